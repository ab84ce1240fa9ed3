"""Health (200 or 503 with the problems, for probes and ``govdeploy status``) and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from govdeploy.serving.gateway.api.deps import AuditorCaller, GatewayDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz(gateway: GatewayDep) -> JSONResponse:
    """200 with status ok, or 503 naming each problem (I/O log, shipping backlog, serving refresh)."""
    calls = {
        f"{served.name} v{slot.version}": slot.batcher.batches
        for served in gateway.state.models.values()
        for slot in (served.champion, served.challenger)
        if slot is not None
    }
    problems = gateway.problems()
    writer, backlog = gateway.writer, gateway.writer.backlog
    body = {
        "status": "failing" if problems else "ok",
        "problems": problems,
        "models": sorted(gateway.state.models),
        "io_records_written": writer.written,
        "io_records_pending": writer.pending,
        "io_records_lost": writer.lost,
        "io_backlog_batches": backlog.size if backlog else 0,
        "io_backlog_oldest_seconds": round(backlog.oldest_age(), 1) if backlog else 0.0,
        "refresh_failures": gateway.refresh_health.failures,
        "model_calls": calls,
    }
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics")
async def metrics(gateway: GatewayDep, caller: AuditorCaller) -> Response:
    return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")
