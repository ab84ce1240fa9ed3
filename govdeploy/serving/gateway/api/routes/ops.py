"""Health (200 or 503 with the problems, for probes and ``govdeploy status``) and metrics.

With several worker processes, /healthz answers for the worker that takes the request (each
refuses predictions itself when its I/O log fails) and /metrics for all of them added up.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse

from govdeploy.serving.gateway.api.deps import AuditorCaller, GatewayDep

router = APIRouter(tags=["ops"])

# roles that see what /healthz found (paths, servers, counters); anyone else gets the status only
DETAILS = frozenset({"auditor", "deployer"})


@router.get("/healthz")
async def healthz(gateway: GatewayDep, x_api_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """200 with status ok, or 503 naming each problem (I/O log, shipping backlog, serving refresh).

    Probes need no key and get the status and how many problems there are; the problems and
    figures (which name paths and servers) go only to an auditor's or deployer's key."""
    problems = gateway.problems()
    code = 503 if problems else 200
    status = "failing" if problems else "ok"
    principal = gateway.keys.authenticate(x_api_key)
    if principal is None or not principal.roles & DETAILS:
        return JSONResponse({"status": status, "problems": len(problems)}, status_code=code)
    calls = {
        f"{served.name} v{slot.version}": slot.batcher.batches
        for served in gateway.state.models.values()
        for slot in (served.champion, served.challenger)
        if slot is not None
    }
    writer, backlog = gateway.writer, gateway.writer.backlog
    body = {
        "status": status,
        "problems": problems,
        "models": sorted(gateway.state.models),
        "io_records_written": writer.written,
        "io_records_pending": writer.pending,
        "io_records_lost": writer.lost,
        "io_backlog_batches": backlog.size if backlog else 0,
        "io_backlog_oldest_seconds": round(backlog.oldest_age(), 1) if backlog else 0.0,
        "refresh_failures": gateway.refresh_health.failures,
        "worker": {"pid": os.getpid(), "of": gateway.workers},  # the figures above are this worker's
        "model_calls": calls,
    }
    return JSONResponse(body, status_code=code)


@router.get("/metrics")
async def metrics(gateway: GatewayDep, caller: AuditorCaller) -> Response:
    return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")
