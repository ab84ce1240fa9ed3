"""The gateway ASGI app: ``uvicorn govdeploy.serving.gateway.main:app`` (``govdeploy gateway``), or in
several worker processes ``python -m govdeploy.serving.gateway.run`` (``govdeploy up``).

Every response but the health check becomes one I/O record (access and predictions alike), written
durably in encrypted batches: after a burst or a SIGTERM, records == responses. Whatever a request
holds, its answer carries its request id (``X-Request-Id``; in JSON errors also ``request_id``),
and what the gateway cannot handle gets a 4xx naming the problem: a body longer than its route's
limit gets 413 before anyone reads it (``max_body_bytes`` for predictions and feedback,
``max_control_body_bytes`` elsewhere), a body that trickles in 408. An unexpected failure is still
answered (500 with the request id) and recorded.

Its request id (the record's id) is minted by ``RequestIds``: bound to the principal once the API key
authenticated, so that only that principal may send its ground truth.

``/docs`` and ``/openapi.json`` answer 404 unless ``GOVDEPLOY_GATEWAY_DOCS`` turns them on.

It runs with the HTTP protocol ``govdeploy.serving.gateway.server:HeaderDeadline`` (uvicorn
``--http``), which closes connections whose request headers come too slowly; ``server.LimitedBody``
enforces the body limits. Predictions take a lean route (``models.predict_route``), matched before
FastAPI's; once started, what the process made so far is frozen out of the garbage collector's
sight (``gc.freeze``), so that no full collection of it stalls the event loop.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govdeploy.config.settings import Settings, get_settings
from govdeploy.monitoring.iorecords import IORecord
from govdeploy.serving.gateway.api.deps import GatewayDep
from govdeploy.serving.gateway.api.routes import models, ops
from govdeploy.serving.gateway.inputs import shown
from govdeploy.serving.gateway.metrics import route_kind
from govdeploy.serving.gateway.parts import Gateway, build_gateway
from govdeploy.serving.gateway.server import LimitedBody, declared_length
from govdeploy.trust.keys import master_key
from govdeploy.trust.request_ids import RequestIds

log = logging.getLogger("govdeploy.gateway")
LARGE_BODY_ROUTES = frozenset({"predict", "feedback"})


def _record(
    gateway: Gateway, state: dict[str, Any], method: str, path: str, status: int, started: float
) -> None:
    io = state["io"]
    model, version = io.get("model"), io.get("version")
    latency = time.perf_counter() - started
    gateway.metrics.responses.labels(route_kind(path), str(status)).inc()
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


def error_body(detail: Any, request_id: str | None) -> bytes:
    """The JSON of an error answer (ASCII: it can always be encoded, whatever the detail holds)."""
    return json.dumps({"detail": detail, "request_id": request_id}, default=str).encode("ascii")


class RecordEveryResponse:
    """ASGI middleware: one I/O record per response (the health check aside), X-Request-Id header,
    bodies capped before the app (and authentication) sees them, every failure answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        gateway: Gateway = scope["app"].state.gateway
        state = scope.setdefault("state", {})
        request_ids: RequestIds = scope["app"].state.request_ids
        state.update(request_id=request_ids.mint(None), io={})  # bound to the caller by api.deps
        status, responded = 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message.setdefault("headers", []).append((b"x-request-id", state["request_id"].encode()))
            await send(message)

        settings = gateway.settings
        large = route_kind(scope["path"]) in LARGE_BODY_ROUTES
        limit = settings.max_body_bytes if large else settings.max_control_body_bytes
        declared = declared_length(scope)
        try:
            if declared is not None and declared > limit:
                detail = f"body of {declared} bytes exceeds the limit of {limit}"
                state["io"]["error"] = detail
                await _answer(send_with_id, 413, detail, state["request_id"])
                return
            await self.app(scope, LimitedBody(receive, limit, settings.body_timeout_seconds), send_with_id)
        except Exception as exc:
            state["io"]["error"] = type(exc).__name__
            log.exception("%s %s failed", scope["method"], shown(scope["path"]))
            if responded:
                raise
            await _answer(send_with_id, 500, "internal error; quote the request id", state["request_id"])
        finally:
            _record(gateway, state, scope["method"], scope["path"], status, started)


async def _answer(send: Send, status: int, detail: str, request_id: str) -> None:
    body = error_body(detail, request_id)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def http_error(request: Request, exc: Exception) -> Response:
    """An HTTPException (the routes' and Starlette's 404/405) as JSON with the request id."""
    assert isinstance(exc, StarletteHTTPException)
    body = error_body(exc.detail, _request_id(request))
    return Response(body, exc.status_code, headers=exc.headers, media_type="application/json")


async def invalid_request(request: Request, exc: Exception) -> Response:
    """A request FastAPI could not bind to its route: 422 naming the first problem."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ())) or "request"
    detail = f"{shown(where)}: {first.get('msg', 'is invalid')}"
    return Response(error_body(detail, _request_id(request)), 422, media_type="application/json")


docs = APIRouter(include_in_schema=False)


def _docs_on(gateway: Gateway) -> None:
    if not gateway.settings.gateway_docs:
        raise HTTPException(404, "Not Found")


@docs.get("/openapi.json")
async def openapi(request: Request, gateway: GatewayDep) -> Response:
    _docs_on(gateway)
    return Response(json.dumps(request.app.openapi()), media_type="application/json")


@docs.get("/docs")
async def swagger(gateway: GatewayDep) -> Response:
    _docs_on(gateway)
    return get_swagger_ui_html(openapi_url="/openapi.json", title="govdeploy gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        chosen = settings or get_settings()
        gateway = build_gateway(chosen)
        app.state.gateway = gateway
        app.state.request_ids = RequestIds.from_master(master_key(chosen.keys_dir))
        gateway.start()
        # what startup made (modules, the models) lives as long as the process: out of the garbage
        # collector's sight, so that no full collection stops the event loop for a third of a second
        gc.collect()
        gc.freeze()
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
    app = FastAPI(
        title="govdeploy gateway",
        lifespan=lifespan,
        telemetry=no_telemetry,
        openapi_url=None,  # served by the docs router, when the settings turn it on
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(RecordEveryResponse)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    # the hot path, matched before the documented FastAPI route of the same path
    app.add_route("/v1/models/{name}/predict", models.predict_route, ["POST"], include_in_schema=False)
    app.include_router(models.router)
    app.include_router(ops.router)
    app.include_router(docs)
    return app


app = create_app()
