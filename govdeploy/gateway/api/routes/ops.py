"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from govdeploy.gateway.api.deps import AuditorCaller, GatewayDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz(gateway: GatewayDep) -> dict[str, object]:
    return {
        "status": "ok",
        "models": sorted(gateway.state.models),
        "io_records_written": gateway.writer.written,
    }


@router.get("/metrics")
def metrics(gateway: GatewayDep, caller: AuditorCaller) -> Response:
    return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")
