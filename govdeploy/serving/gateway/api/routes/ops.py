"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from govdeploy.serving.gateway.api.deps import AuditorCaller, GatewayDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz(gateway: GatewayDep) -> dict[str, object]:
    calls = {
        f"{served.name} v{slot.version}": slot.batcher.batches
        for served in gateway.state.models.values()
        for slot in (served.champion, served.challenger)
        if slot is not None
    }
    return {
        "status": "ok",
        "models": sorted(gateway.state.models),
        "io_records_written": gateway.writer.written,
        "model_calls": calls,
    }


@router.get("/metrics")
async def metrics(gateway: GatewayDep, caller: AuditorCaller) -> Response:
    return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")
