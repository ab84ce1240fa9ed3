"""The gateway ASGI app: ``uvicorn govdeploy.gateway.main:app`` (``govdeploy gateway``).

Every response but the health check becomes one I/O record (access and predictions alike), written
durably in encrypted batches: after a burst or a SIGTERM, records == responses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response

from govdeploy.gateway.api.routes import models, ops
from govdeploy.gateway.core import Gateway, build_gateway
from govdeploy.gateway.iolog import IORecord
from govdeploy.settings import Settings, get_settings


def _record(gateway: Gateway, request: Request, status: int, started: float) -> None:
    io = request.state.io
    model, version = io.get("model"), io.get("version")
    latency = time.perf_counter() - started
    if io.get("kind") == "predict":
        gateway.metrics.requests.labels(model, version or "-", str(status)).inc()
        gateway.metrics.latency.labels(model, version or "-").observe(latency)
    gateway.writer.submit(
        IORecord(
            id=request.state.request_id,
            time=datetime.now(UTC).isoformat(),
            kind=io.get("kind", "access"),
            model=model,
            version=version,
            principal=getattr(request.state, "principal", None),
            route=f"{request.method} {request.url.path}",
            status=status,
            latency_ms=round(latency * 1000, 3),
            inputs=io.get("inputs"),
            outputs=io.get("outputs"),
            error=io.get("error"),
        )
    )


async def record_every_response(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    if request.url.path == "/healthz":
        return await call_next(request)
    started = time.perf_counter()
    request.state.request_id = uuid.uuid4().hex
    request.state.io = {}
    gateway: Gateway = request.app.state.gateway
    try:
        response = await call_next(request)
    except Exception as exc:
        request.state.io["error"] = type(exc).__name__
        _record(gateway, request, 500, started)
        raise
    _record(gateway, request, response.status_code, started)
    response.headers["X-Request-Id"] = request.state.request_id
    return response


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = build_gateway(settings or get_settings())
        app.state.gateway = gateway
        gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(title="govdeploy gateway", lifespan=lifespan)
    app.middleware("http")(record_every_response)
    app.include_router(models.router)
    app.include_router(ops.router)
    return app


app = create_app()
