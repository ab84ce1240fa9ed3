"""Ground truth only from whom it belongs to: the gateway app in-process (httpx's ASGI transport).

The app is the real one (middleware, dependencies, routes) over a gateway whose model is a stub and
whose I/O log is a real encrypted writer in a temporary directory; its lifespan does not run.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from govdeploy.config.policy import load_policy
from govdeploy.config.settings import Settings
from govdeploy.monitoring.alerts import AlertNotifier
from govdeploy.monitoring.anomalies import AnomalyMonitor
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.monitoring.iorecords import IORecord, read_batches
from govdeploy.serving.gateway.access import KeyRing, Principal, RateLimiter
from govdeploy.serving.gateway.main import create_app
from govdeploy.serving.gateway.metrics import GatewayMetrics
from govdeploy.serving.gateway.parts import Gateway
from govdeploy.serving.gateway.state import ServedModel, Slot
from govdeploy.trust.request_ids import RequestIds
from tests.conftest import CONFIG_DIR

MASTER = bytes(range(32))
ROLES = {"alice": "predict", "bob": "predict", "auditor": "auditor"}
MODEL = "m"
ROW = {"x": 1.5}


class _Batcher:
    async def submit(self, rows: list[dict[str, Any]]) -> list[float]:
        return [0.25] * len(rows)


def _served() -> ServedModel:
    verified = SimpleNamespace(version="1", inputs=["x"], input_types={"x": "double"})  # a verified model's
    return ServedModel(MODEL, frozenset(), champion=Slot(verified, _Batcher()))  # type: ignore[arg-type]


@dataclass
class Replica:
    """One gateway process's app, with its own I/O log; replicas share only the master key."""

    app: FastAPI
    writer: IOLogWriter
    iolog: Path

    def post(self, route: str, body: Any, principal: str | None) -> httpx.Response:
        headers = {"X-API-Key": f"key-{principal}"} if principal else {}

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                return await client.post(f"/v1/models/{MODEL}/{route}", json=body, headers=headers)

        return asyncio.run(send())

    def predict(self, principal: str) -> str:
        response = self.post("predict", {"inputs": ROW}, principal)
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == response.json()["request_id"]
        return str(response.json()["request_id"])

    def records(self) -> list[IORecord]:
        self.writer.close()
        return read_batches(self.iolog, MASTER)


def _replica(root: Path, master: bytes) -> Replica:
    settings = Settings(state_dir=root / "state", config_dir=CONFIG_DIR)
    ring = KeyRing(
        [
            (hashlib.sha256(f"key-{p}".encode()).digest(), Principal(p, frozenset({role}), 100_000))
            for p, role in ROLES.items()
        ]
    )
    writer = IOLogWriter(root / "iolog", master)
    gateway = Gateway(
        settings=settings,
        keys=ring,
        limiter=RateLimiter(),
        writer=writer,
        state=SimpleNamespace(models={MODEL: _served()}),  # type: ignore[arg-type]
        metrics=GatewayMetrics(),
        token_secret=b"t" * 32,
        monitor=AnomalyMonitor(load_policy(CONFIG_DIR / "policy.yaml").alerts),
        notifier=AlertNotifier(None),
    )
    app = create_app(settings)
    app.state.gateway = gateway
    app.state.request_ids = RequestIds.from_master(master)
    return Replica(app, writer, root / "iolog")


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    made: list[Replica] = []

    def make(name: str = "a", master: bytes = MASTER) -> Replica:
        made.append(_replica(tmp_path / name, master))
        return made[-1]

    yield make
    for replica in made:
        replica.writer.close()


def feedback_records(replica: Replica) -> list[IORecord]:
    return [r for r in replica.records() if r.kind == "feedback"]


def test_every_answer_carries_a_request_id_issued_to_its_caller(replicas: Callable[..., Replica]) -> None:
    gateway = replicas()
    ids = RequestIds.from_master(MASTER)
    rid = gateway.predict("alice")
    assert ids.issued_to(rid, "alice") and not ids.issued_to(rid, "bob")
    anonymous = gateway.post("predict", {"inputs": ROW}, None)
    assert anonymous.status_code == 401
    assert not any(ids.issued_to(anonymous.headers["x-request-id"], p) for p in ROLES)
    records = {r.id: r for r in gateway.records()}
    assert records[rid].principal == "alice" and records[rid].kind == "predict"
    assert records[anonymous.headers["x-request-id"]].status == 401


def test_labels_of_the_callers_own_predictions_are_accepted(replicas: Callable[..., Replica]) -> None:
    gateway = replicas()
    first, second = gateway.predict("alice"), gateway.predict("alice")
    labels = [{"request_id": first, "label": 1}, {"request_id": second, "label": 0}]
    many = gateway.post("feedback", {"labels": labels}, "alice")
    assert many.status_code == 202, many.text
    assert many.json()["accepted"] == 2
    one = gateway.post("feedback", {"request_id": first, "label": 0}, "alice")
    assert one.status_code == 202 and one.json()["accepted"] == 1
    logged = {r.id: r for r in feedback_records(gateway)}
    assert logged[many.json()["request_id"]].labels == labels
    assert logged[many.json()["request_id"]].principal == "alice"
    assert logged[one.json()["request_id"]].status == 202


def test_a_label_for_another_principals_prediction_refuses_the_whole_body(
    replicas: Callable[..., Replica],
) -> None:
    gateway = replicas()
    alices, bobs = gateway.predict("alice"), gateway.predict("bob")
    body = {"labels": [{"request_id": bobs, "label": 1}, {"request_id": alices, "label": 0}]}
    refused = gateway.post("feedback", body, "bob")
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"request_id {alices} was not issued to bob; label only your own predictions"
    )
    [record] = feedback_records(gateway)  # recorded, and nothing accepted: not even bob's own label
    assert (record.status, record.principal, record.model, record.labels) == (403, "bob", MODEL, None)
    assert record.id == refused.headers["x-request-id"] and alices in str(record.error)


@pytest.mark.parametrize("forge", ["zeros", "flipped", "uuid4-style", "anonymous"])
def test_a_forged_request_id_is_refused_with_403(replicas: Callable[..., Replica], forge: str) -> None:
    gateway = replicas()
    own = gateway.predict("alice")
    forged = {
        "zeros": "0" * 32,
        "flipped": own[:-1] + ("1" if own[-1] == "0" else "0"),
        "uuid4-style": "3f2b8c1e9a7d4e6f8b0c1d2e3f4a5b6c",  # an id of the gateway before bound ids
        "anonymous": gateway.post("predict", {"inputs": ROW}, None).headers["x-request-id"],
    }[forge]
    body = {"labels": [{"request_id": own, "label": 1}, {"request_id": forged, "label": 1}]}
    response = gateway.post("feedback", body, "alice")
    assert response.status_code == 403 and forged in response.json()["detail"]
    assert [(r.status, r.labels) for r in feedback_records(gateway)] == [(403, None)]


def test_a_request_id_not_shaped_like_one_is_an_input_error(replicas: Callable[..., Replica]) -> None:
    gateway = replicas()
    response = gateway.post("feedback", {"request_id": "abc", "label": 1}, "alice")
    assert (
        response.status_code == 422
        and "request_id: must be the request_id of a prediction" in (response.json()["detail"])
    )
    assert [(r.status, r.labels) for r in feedback_records(gateway)] == [(422, None)]


def test_feedback_needs_the_predict_role(replicas: Callable[..., Replica]) -> None:
    gateway = replicas()
    rid = gateway.predict("alice")
    assert gateway.post("feedback", {"request_id": rid, "label": 1}, "auditor").status_code == 403


def test_another_replica_with_the_same_master_key_accepts_the_label(
    replicas: Callable[..., Replica],
) -> None:
    first, second, elsewhere = replicas("a"), replicas("b"), replicas("c", bytes(32))
    rid = first.predict("alice")
    assert second.post("feedback", {"request_id": rid, "label": 1}, "alice").status_code == 202
    assert second.post("feedback", {"request_id": rid, "label": 1}, "bob").status_code == 403
    assert elsewhere.post("feedback", {"request_id": rid, "label": 1}, "alice").status_code == 403
