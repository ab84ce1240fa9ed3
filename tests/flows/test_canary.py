"""Canary through the stack's gateway under live traffic: a good challenger becomes champion, a
worse one is rolled back automatically; rollback returns to the previous verified champion."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import mlflow
import pytest

from flows.canary import canary
from flows.rollback import rollback
from flows.train import train
from govdeploy.errors import RolloutError
from govdeploy.evidence import records
from govdeploy.settings import Settings
from tests.flows.conftest import MODEL, promote_now, version_tags
from tests.flows.test_gateway import ROW, key

pytestmark = pytest.mark.e2e


@pytest.fixture
def traffic(stack: Settings) -> Iterator[list[int]]:
    """Four clients sending predictions until the test ends; yields the statuses seen."""
    stop, statuses = threading.Event(), []

    def client() -> None:
        with httpx.Client(base_url=stack.gateway_url, headers=key(stack, "bench"), timeout=30) as http:
            while not stop.is_set():
                statuses.append(http.post(f"/v1/models/{MODEL}/predict", json={"inputs": ROW}).status_code)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    yield statuses
    stop.set()
    for thread in threads:
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def champion(stack: Settings) -> dict[str, Any]:
    first = train(model=MODEL, rows=2000, seed=51, submitted_by="dana")
    promote_now(stack, first)
    httpx.post(f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60)
    return first


def served_versions(stack: Settings) -> set[str]:
    answers = [
        httpx.post(
            f"{stack.gateway_url}/v1/models/{MODEL}/predict",
            json={"inputs": ROW},
            headers=key(stack, "bench"),
        ).json()["version"]
        for _ in range(40)
    ]
    return set(answers)


def test_a_worse_challenger_is_rolled_back_automatically(
    stack: Settings, champion: dict[str, Any], traffic: list[int]
) -> None:
    worse = train(
        model=MODEL, rows=2000, seed=52, label_bias=0.8, submitted_by="dana"
    )  # predicts far more defaults
    promote_now(stack, worse, alias="challenger")
    with pytest.raises(RolloutError, match=r"rolled back at 5%: mean prediction .* over the limit 0.1"):
        canary(model=MODEL, version=worse["version"], bake_seconds=2)
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion["version"]
    assert "challenger" not in {a for a in client.get_registered_model(MODEL).aliases}
    assert served_versions(stack) == {champion["version"]}
    actions = [r.action for r in records(stack, MODEL) if r.version == worse["version"]]
    assert actions[-2:] == ["canary.step", "canary.rolled_back"]
    assert set(traffic) == {200}


def test_a_good_challenger_becomes_champion_and_rollback_returns(
    stack: Settings, champion: dict[str, Any], traffic: list[int]
) -> None:
    better = train(model=MODEL, rows=2000, seed=53, submitted_by="dana")
    promote_now(stack, better, alias="challenger")
    result = canary(model=MODEL, version=better["version"], bake_seconds=2)
    assert [s["weight"] for s in result["steps"]] == [5, 25, 50, 100]
    assert result["previous"] == champion["version"]
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(MODEL, "champion").version == better["version"]
    assert version_tags(better["version"])["govdeploy.rollback_target"] == champion["version"]
    assert served_versions(stack) == {better["version"]}

    moved = rollback(model=MODEL, reason="test")
    assert moved == {"model": MODEL, "from": better["version"], "to": champion["version"]}
    httpx.post(f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60)
    assert served_versions(stack) == {champion["version"]}
    assert set(traffic) == {200}
