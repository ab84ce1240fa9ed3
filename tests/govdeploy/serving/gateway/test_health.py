"""/healthz and the I/O log under faults: the gateway app in-process (httpx's ASGI transport).

The app is the real one over a gateway whose model is a stub, whose I/O log is a real encrypted
writer in a temporary directory, shipping to a fake bucket; its lifespan does not run.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from govdeploy.config.policy import load_policy
from govdeploy.config.settings import Settings
from govdeploy.errors import RegistryError
from govdeploy.monitoring.alerts import AlertNotifier
from govdeploy.monitoring.anomalies import AnomalyMonitor
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.monitoring.iorecords import read_batches
from govdeploy.polling import poll
from govdeploy.serving.gateway.access import KeyRing, Principal, RateLimiter
from govdeploy.serving.gateway.main import create_app
from govdeploy.serving.gateway.metrics import GatewayMetrics
from govdeploy.serving.gateway.parts import Gateway, RefreshHealth
from govdeploy.serving.gateway.state import ServedModel, Slot
from govdeploy.trust.request_ids import RequestIds
from tests.conftest import CONFIG_DIR
from tests.govdeploy.monitoring.test_iolog_faults import MASTER, Bucket

MODEL = "m"


class _Batcher:
    batches = 0

    async def submit(self, rows: list[dict[str, Any]]) -> list[float]:
        return [0.25] * len(rows)

    async def stop(self) -> None:
        return None


class _State:
    """Serving state of one stub model; ``refresh`` fails while ``error`` is set."""

    def __init__(self) -> None:
        verified = SimpleNamespace(version="1", inputs=["x"], input_types={"x": "double"})
        self.models = {MODEL: ServedModel(MODEL, frozenset(), champion=Slot(verified, _Batcher()))}  # type: ignore[arg-type]
        self.error: Exception | None = None

    def refresh(self) -> None:
        if self.error is not None:
            raise self.error


def _gateway(root: Path, bucket: Bucket | None = None, **settings: Any) -> tuple[FastAPI, Gateway]:
    chosen = Settings(state_dir=root / "state", config_dir=CONFIG_DIR, **settings)
    principal = Principal("alice", frozenset({"predict"}), 1_000_000)
    auditor = Principal("audra", frozenset({"auditor"}), 1_000_000)
    gateway = Gateway(
        settings=chosen,
        keys=KeyRing(
            [
                (hashlib.sha256(b"key-alice").digest(), principal),
                (hashlib.sha256(b"key-audra").digest(), auditor),
            ]
        ),
        limiter=RateLimiter(),
        writer=IOLogWriter(
            root / "iolog",
            MASTER,
            flush_interval=0.01,
            shipper=bucket.ship if bucket else None,
            ship_retry_min=0.02,
        ),
        state=_State(),  # type: ignore[arg-type]
        metrics=GatewayMetrics(),
        token_secret=b"t" * 32,
        monitor=AnomalyMonitor(load_policy(CONFIG_DIR / "policy.yaml").alerts),
        notifier=AlertNotifier(None),
    )
    app = create_app(chosen)
    app.state.gateway = gateway
    app.state.request_ids = RequestIds.from_master(MASTER)
    return app, gateway


async def _get(app: FastAPI, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.get(path, **kwargs)


def healthz(app: FastAPI, key: str | None = "key-audra") -> httpx.Response:
    """/healthz as an auditor sees it (``key=None``: as a probe without a key)."""
    return asyncio.run(_get(app, "/healthz", headers={"X-API-Key": key} if key else {}))


def predictions(app: FastAPI, count: int) -> list[httpx.Response]:
    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return [
                await client.post(
                    f"/v1/models/{MODEL}/predict",
                    json={"inputs": {"x": 1.0}},
                    headers={"X-API-Key": "key-alice"},
                )
                for _ in range(count)
            ]

    return asyncio.run(send())


def test_a_healthy_gateway_says_ok_with_its_backlog(tmp_path: Path) -> None:
    app, gateway = _gateway(tmp_path, Bucket(tmp_path / "iolog"))
    gateway.writer.start()
    gateway.refresh()
    response = healthz(app)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["problems"] == [] and body["io_backlog_batches"] == 0
    assert body["refresh_failures"] == 0 and body["io_records_lost"] == 0
    gateway.writer.close()


def test_an_unwritable_spool_refuses_and_fails_the_health_check(tmp_path: Path, freeze: Any) -> None:
    app, gateway = _gateway(tmp_path)
    gateway.writer.start()
    gateway.refresh()
    freeze(tmp_path / "iolog")
    assert predictions(app, 1)[0].status_code in (200, 503)  # its record cannot be written
    poll(lambda: gateway.writer.refusal() is not None, timeout=5, interval=0.01)
    response = healthz(app)
    assert response.status_code == 503 and response.json()["status"] == "failing"
    assert '"ok"' not in response.text  # the stack's probe looks for it
    assert any("cannot be written" in p for p in response.json()["problems"])
    for key in (None, "key-alice", "not-a-key"):  # a probe or a client: the status, no paths
        probe = healthz(app, key)
        assert probe.status_code == 503 and probe.json() == {"status": "failing", "problems": 1}
    freeze.thaw()
    poll(lambda: gateway.writer.refusal() is None, timeout=5, interval=0.01)
    assert healthz(app).status_code == 200
    gateway.writer.close()


def test_a_failing_refresh_fails_the_health_check_until_one_succeeds(tmp_path: Path) -> None:
    app, gateway = _gateway(tmp_path)
    state: _State = gateway.state  # type: ignore[assignment]
    gateway.refresh()
    state.error = RegistryError("registry at http://127.0.0.1:5050 unreachable")
    with pytest.raises(RegistryError):
        gateway.refresh()
    response = healthz(app)
    assert response.status_code == 503 and response.json()["refresh_failures"] == 1
    assert response.json()["problems"] == [
        "the last refresh of the serving state failed: RegistryError: registry at http://127.0.0.1:5050 unreachable"
    ]
    state.error = None
    gateway.refresh()
    assert healthz(app).status_code == 200
    gateway.writer.close()


def test_no_successful_refresh_for_n_periods_is_a_problem() -> None:
    health = RefreshHealth()
    assert health.problem(period=10.0, max_missed=3) is None
    health.started -= 31
    assert health.problem(10.0, 3) == "no refresh of the serving state succeeded for 31s"
    health.succeeded()
    assert health.problem(10.0, 3) is None
    health.succeeded_at = (health.succeeded_at or 0) - 29
    assert health.problem(10.0, 3) is None


def test_records_equal_responses_across_a_spool_and_bucket_outage(tmp_path: Path, freeze: Any) -> None:
    bucket = Bucket(tmp_path / "iolog", failures=10**6)
    app, gateway = _gateway(tmp_path, bucket)
    gateway.writer.start()
    backlog = gateway.writer.backlog
    assert backlog is not None
    responses = predictions(app, 20)
    freeze(tmp_path / "iolog")
    responses += predictions(app, 30)
    responses.append(asyncio.run(_get(app, f"/v1/models/{MODEL}/predict")))  # 405: a record too
    poll(lambda: healthz(app).status_code == 503, timeout=5, interval=0.01)
    freeze.thaw()
    bucket.failures = 0
    poll(lambda: healthz(app).status_code == 200, timeout=10, interval=0.02)
    poll(lambda: gateway.writer.written == len(responses) and backlog.size == 0, timeout=10, interval=0.02)
    asyncio.run(gateway.stop())
    records = read_batches(tmp_path / "iolog", MASTER)
    assert sorted(r.id for r in records) == sorted(r.headers["x-request-id"] for r in responses)
    assert sorted(r.status for r in records) == sorted(r.status_code for r in responses)
    assert sorted(r.id for r in bucket.records()) == sorted(r.id for r in records)


def test_stop_on_an_unwritable_spool_alerts_the_records_lost(
    tmp_path: Path,
    freeze: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    posted: list[dict[str, Any]] = []

    def post_alert(url: str | None, alert: dict[str, Any]) -> str:
        posted.append(alert)
        return "delivered"

    monkeypatch.setattr("govdeploy.serving.gateway.parts.post_alert", post_alert)
    app, gateway = _gateway(tmp_path)
    predictions(app, 4)
    freeze(tmp_path / "iolog")
    monkeypatch.setattr(gateway.writer, "close", lambda: IOLogWriter.close(gateway.writer, timeout=0.1))
    asyncio.run(gateway.stop())
    assert len(posted) == 1 and "4 I/O log records could not be written" in posted[0]["reason"]
    assert "4 I/O log records could not be written" in caplog.text
