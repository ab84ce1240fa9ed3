"""The real gateway app (middleware, dependencies, routes) over a gateway whose models are stubs.

Its I/O log is a real encrypted writer in a temporary directory that counts what is submitted to
it; the app's lifespan does not run. Principals: ``alice`` (predict), ``slow`` (predict, 60/min),
``deployer``, ``auditor``; the key of principal ``p`` is ``key-p``. Model ``m`` takes
``income`` (double), ``term`` (long) and ``region`` (string), with ``email`` as personal data;
model ``spare`` is the same and is the one fuzzed controls may kill.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient

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
SCHEMA = {"income": "double", "term": "long", "region": "string"}
PII = frozenset({"email"})
ROW = {"income": 52000.0, "term": 36, "region": "north"}
PRINCIPALS = {
    "alice": ("predict", 1_000_000),
    "slow": ("predict", 60),
    "deployer": ("deployer", 1_000_000),
    "auditor": ("auditor", 1_000_000),
}


def key(principal: str) -> dict[str, str]:
    return {"X-API-Key": f"key-{principal}"}


class StubBatcher:
    def __init__(self) -> None:
        self.batches = 0

    async def submit(self, rows: list[dict[str, Any]]) -> list[float]:
        self.batches += 1
        return [0.25] * len(rows)


def served(name: str) -> ServedModel:
    verified = SimpleNamespace(version="1", inputs=list(SCHEMA), input_types=SCHEMA)
    return ServedModel(name, PII, champion=Slot(verified, StubBatcher()))  # type: ignore[arg-type]


class CountingWriter(IOLogWriter):
    """The real writer, counting the records submitted to it."""

    submitted = 0

    def submit(self, record: IORecord) -> None:
        self.submitted += 1
        super().submit(record)


@dataclass
class StubGateway:
    client: TestClient
    gateway: Gateway
    writer: CountingWriter
    iolog: Path
    audits: list[tuple[Any, ...]] = field(default_factory=list)
    # the kill switch as the serving record holds it; ``durable`` False: the record cannot be written
    switches: list[tuple[str, str | None]] = field(default_factory=list)
    durable: bool = True

    def switch(self, model: str, reason: str | None, issuer: str) -> str | None:
        if not self.durable:
            return "s3://govdeploy/serving/spare.json could not be written: connection refused"
        self.switches.append((model, reason))
        self.gateway.state.models[model].killed = reason
        return None

    def records(self) -> list[IORecord]:
        """Every record written (the writer is closed first)."""
        self.writer.close()
        return read_batches(self.iolog, MASTER)

    def metrics(self) -> str:
        return self.gateway.metrics.render().decode()


def stub_gateway(root: Path, **overrides: Any) -> StubGateway:
    """The app over stub models, its settings changed by ``overrides``."""
    settings = Settings(state_dir=root / "state", config_dir=CONFIG_DIR, refresh_seconds=3600, **overrides)
    ring = KeyRing(
        [
            (hashlib.sha256(f"key-{p}".encode()).digest(), Principal(p, frozenset({role}), limit))
            for p, (role, limit) in PRINCIPALS.items()
        ]
    )
    writer = CountingWriter(root / "iolog", MASTER)
    writer.start()
    models = {"m": served("m"), "spare": served("spare")}
    gateway = Gateway(
        settings=settings,
        keys=ring,
        limiter=RateLimiter(),
        writer=writer,
        state=SimpleNamespace(models=models, refresh=lambda: None),  # type: ignore[arg-type]
        metrics=GatewayMetrics(),
        token_secret=b"t" * 32,
        monitor=AnomalyMonitor(load_policy(CONFIG_DIR / "policy.yaml").alerts),
        notifier=AlertNotifier(None),
    )
    stub = StubGateway(TestClient(create_app(settings)), gateway, writer, root / "iolog")
    gateway.audit = lambda *args: stub.audits.append(args)  # type: ignore[method-assign]
    gateway.switch = stub.switch  # type: ignore[method-assign]
    stub.client.app.state.gateway = gateway  # type: ignore[attr-defined]
    stub.client.app.state.request_ids = RequestIds.from_master(MASTER)  # type: ignore[attr-defined]
    return stub


@dataclass
class Exchange:
    """One request sent straight to the ASGI app, and how much of its body the app asked for."""

    status: int
    headers: dict[str, str]
    body: bytes
    receives: int


def call(
    stub: StubGateway,
    method: str,
    path: str,
    chunks: list[bytes],
    headers: dict[str, str] | None = None,
    client: str = "10.0.0.1",
    delay: float = 0.0,
) -> Exchange:
    """Send ``chunks`` as a streamed (chunked) body; ``delay`` seconds before each chunk."""
    import asyncio

    sent: list[dict[str, Any]] = []
    receives = 0

    async def receive() -> dict[str, Any]:
        nonlocal receives
        receives += 1
        if receives > len(chunks):
            await asyncio.sleep(3600)  # the client waits for the answer: no disconnect
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": chunks[receives - 1], "more_body": receives < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": (client, 5000),
        "server": ("gateway", 80),
        "app": stub.client.app,
        "state": {},
    }
    asyncio.run(stub.client.app(scope, receive, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    decoded = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    return Exchange(start["status"], decoded, body, receives)
