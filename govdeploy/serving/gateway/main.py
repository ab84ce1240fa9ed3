"""The gateway ASGI app: ``uvicorn govdeploy.serving.gateway.main:app`` (``govdeploy gateway``).

Every response but the health check becomes one I/O record (access and predictions alike), written
durably in encrypted batches: after a burst or a SIGTERM, records == responses.

Its request id (``X-Request-Id``, the record's id) is minted by ``RequestIds``: bound to the
principal once the API key authenticated, so that only that principal may send its ground truth.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govdeploy.config.settings import Settings, get_settings
from govdeploy.monitoring.iorecords import IORecord
from govdeploy.serving.gateway.api.routes import models, ops
from govdeploy.serving.gateway.parts import Gateway, build_gateway
from govdeploy.trust.keys import master_key
from govdeploy.trust.request_ids import RequestIds


def _record(
    gateway: Gateway, state: dict[str, Any], method: str, path: str, status: int, started: float
) -> None:
    io = state["io"]
    model, version = io.get("model"), io.get("version")
    latency = time.perf_counter() - started
    if io.get("kind") == "predict":
        gateway.metrics.requests.labels(model, version or "-", str(status)).inc()
        gateway.metrics.latency.labels(model, version or "-").observe(latency)
        if version:  # answered or failed by a version (not refused before one was picked)
            gateway.observe(model, version, status, io.get("outputs"), io.get("out_of_range"))
    gateway.writer.submit(
        IORecord(
            id=state["request_id"],
            time=datetime.now(UTC).isoformat(),
            kind=io.get("kind", "access"),
            model=model,
            version=version,
            principal=state.get("principal"),
            route=f"{method} {path}",
            status=status,
            latency_ms=round(latency * 1000, 3),
            inputs=io.get("inputs"),
            outputs=io.get("outputs"),
            error=io.get("error"),
            labels=io.get("labels"),
        )
    )


class RecordEveryResponse:
    """ASGI middleware: one I/O record per response (the health check aside), X-Request-Id header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        request_ids: RequestIds = scope["app"].state.request_ids
        state.update(request_id=request_ids.mint(None), io={})  # bound to the caller by api.deps
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", state["request_id"].encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            state["io"]["error"] = type(exc).__name__
            raise
        finally:
            _record(scope["app"].state.gateway, state, scope["method"], scope["path"], status, started)


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        chosen = settings or get_settings()
        gateway = build_gateway(chosen)
        app.state.gateway = gateway
        app.state.request_ids = RequestIds.from_master(master_key(chosen.keys_dir))
        gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    # FastAPI's built-in OpenTelemetry instrumentation is off: the gateway exports its own metrics,
    # and the per-request spans cost more than the whole prediction path.
    no_telemetry: TelemetryConfig = {
        "tracing": False,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
    }
    app = FastAPI(title="govdeploy gateway", lifespan=lifespan, telemetry=no_telemetry)
    app.add_middleware(RecordEveryResponse)
    app.include_router(models.router)
    app.include_router(ops.router)
    return app


app = create_app()
