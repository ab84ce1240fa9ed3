"""Gateway pieces without servers: input checks, micro-batching, routing and fallback."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest

from govdeploy.serving.gateway.batching import MicroBatcher
from govdeploy.serving.gateway.inputs import InputError, validate_rows
from govdeploy.serving.gateway.state import ServedModel, Slot

SCHEMA = {"income": "double", "term": "long", "region": "string"}


def test_rows_are_typed_and_passthrough_kept() -> None:
    rows = validate_rows(
        {"inputs": {"income": 3, "term": 12, "region": "n", "email": "a@b.c"}},
        SCHEMA,
        frozenset({"email"}),
        10,
    )
    assert rows == [{"income": 3.0, "term": 12, "region": "n", "email": "a@b.c"}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": {"income": True, "term": 1, "region": "n"}}, "income: must be a number, got bool"),
        ({"inputs": {"income": math.inf, "term": 1, "region": "n"}}, "income: must be finite"),
        ({"inputs": {"income": 1.0, "term": 1.5, "region": "n"}}, "term: must be an integer, got float"),
        ({"inputs": []}, "inputs: must be an object or a non-empty list"),
        ({"inputs": [{"income": 1.0, "term": 1, "region": "n"}] * 11}, "11 rows exceed the limit of 10"),
        (
            {"inputs": {"income": 1.0, "term": 1, "region": "n"}, "debug": True},
            "debug: unknown top-level field",
        ),
    ],
)
def test_bad_rows_name_the_field(body: Any, message: str) -> None:
    with pytest.raises(InputError, match=None) as caught:
        validate_rows(body, SCHEMA, frozenset(), 10)
    assert message in str(caught.value)


def test_concurrent_requests_share_model_calls() -> None:
    calls: list[int] = []

    def predict(frame: dict[str, list[Any]]) -> np.ndarray:
        calls.append(len(frame["x"]))
        return np.asarray(frame["x"], dtype=float) / 100

    async def run() -> list[list[float]]:
        batcher = MicroBatcher(predict, ["x"], max_rows=64, max_wait=0.01)
        results = await asyncio.gather(*(batcher.submit([{"x": i}, {"x": i + 1}]) for i in range(0, 40, 2)))
        await batcher.stop()
        return list(results)

    results = asyncio.run(run())
    assert results[3] == [0.06, 0.07]  # each request gets its own slice back
    assert sum(calls) == 40 and len(calls) < 5


class _Batcher:
    def __init__(self, fail: bool, value: float) -> None:
        self.fail, self.value = fail, value

    async def submit(self, rows: list[dict[str, Any]]) -> list[float]:
        if self.fail:
            raise RuntimeError("challenger crashed")
        return [self.value] * len(rows)


def _slot(version: str, fail: bool, value: float) -> Slot:
    verified = type("V", (), {"version": version, "inputs": ["x"]})()
    return Slot(verified, _Batcher(fail, value))


def test_a_failing_challenger_is_answered_by_the_champion() -> None:
    from govdeploy.serving.gateway.api.routes.models import _score
    from govdeploy.serving.gateway.metrics import GatewayMetrics

    served = ServedModel(
        "m",
        frozenset(),
        champion=_slot("1", False, 0.2),
        challenger=_slot("2", True, 0.9),
        challenger_weight=100,
    )
    slot, fallback = served.pick()
    assert slot.version == "2" and fallback is not None and fallback.version == "1"
    gateway = type("G", (), {"metrics": GatewayMetrics()})()
    scores, answered = asyncio.run(_score(gateway, served, slot, fallback, [{"x": 1}]))
    assert scores == [0.2] and answered.version == "1"
    assert gateway.metrics.challenger_errors.labels("m", "2")._value.get() == 1


def test_kill_switch_and_missing_champion_make_the_model_unavailable() -> None:
    served = ServedModel("m", frozenset(), champion=_slot("1", False, 0.2))
    assert served.unavailable() is None
    served.killed = "incident 7"
    assert "shut down by a deployer: incident 7" in str(served.unavailable())
    assert "no verified champion" in str(
        ServedModel("n", frozenset(), problems=["champion v3 refused"]).unavailable()
    )
