"""Predictions and deployment controls of one served model.

Bodies are read only after the caller is authenticated (``api.deps``), capped in size, and parsed
by ``inputs.parse_json``. A prediction client that gets 503 learns only whether the model is shut
down (with the deployer's reason) or has nothing verified to serve; what failed verification is for
auditors and deployers (``GET /v1/models/{name}``, and the answers of kill, revive and reload).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field, ValidationError

from govdeploy.monitoring.alerts import post_alert
from govdeploy.monitoring.iorecords import mask_pii
from govdeploy.serving.gateway.api.deps import (
    DeployerCaller,
    GatewayDep,
    PredictCaller,
    ReaderCaller,
    RequestIdsDep,
    authorize,
    charge_rows,
)
from govdeploy.serving.gateway.inputs import (
    InputError,
    feedback_labels,
    metric_field,
    parse_json,
    shown,
    validate_rows,
)
from govdeploy.serving.gateway.parts import Gateway
from govdeploy.serving.gateway.state import ServedModel, Slot
from govdeploy.trust.request_ids import RequestIds

router = APIRouter(prefix="/v1/models", tags=["models"])
PREDICT = ("predict",)


def served_model(gateway: Gateway, name: str) -> ServedModel:
    served = gateway.state.models.get(name)
    if served is None:
        raise HTTPException(404, f"unknown model {shown(name)!r}")
    return served


def public_reason(served: ServedModel) -> str | None:
    """Why the model cannot answer, as its prediction clients are told (no verification details)."""
    if served.killed or served.local_kill:
        return f"model {served.name} is shut down by a deployer: {served.killed or served.local_kill}"
    if served.champion is None:
        return f"model {served.name} has no verified version to serve"
    return None


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is longer than ``limit`` (it is never read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Prediction(BaseModel):
    model: str
    version: str
    predictions: list[float]
    request_id: str


async def predict_route(request: Request) -> Response:
    """``POST /v1/models/{name}/predict`` as served: ``predict`` with its caller authorised here, not
    by FastAPI's parameter and dependency machinery, which costs more than the rest of the request
    path (``main.create_app`` registers it before the routes of this module)."""
    caller = await authorize(request, PREDICT)
    return await predict(request.path_params["name"], request, caller)


@router.post("/{name}/predict", response_model=Prediction)
async def predict(name: str, request: Request, caller: PredictCaller) -> Response:
    """Score one row or a batch with the serving version (the gateway comes from the app state, not a
    dependency: this is the hot path). Declared here for the API docs; served by ``predict_route``."""
    gateway: Gateway = request.app.state.gateway
    served = served_model(gateway, name)
    request.state.io.update(kind="predict", model=name)
    reason = public_reason(served) or gateway.writer.refusal()  # no answer without its record
    if reason:
        raise HTTPException(503, reason)
    raw = await read_capped(request, gateway.settings.max_body_bytes)
    slot, fallback = served.pick()
    schema = slot.verified.input_types
    try:
        rows = validate_rows(
            parse_json(raw), schema, served.passthrough, gateway.settings.max_rows_per_request
        )
    except InputError as exc:
        field = metric_field(exc.field, frozenset(schema) | served.passthrough)
        gateway.metrics.anomalies.labels(name, field).inc()
        raise HTTPException(422, str(exc)) from None
    charge_rows(request, caller, len(rows))
    io = request.state.io
    io.update(
        inputs=[mask_pii(row, served.passthrough, gateway.token_secret) for row in rows],
        version=slot.version,  # a model failure counts against the version that failed
    )
    scores, slot = await _score(gateway, served, slot, fallback, rows)
    io.update(version=slot.version, outputs=scores)
    if slot.ranges is not None:
        io["out_of_range"] = _check_ranges(gateway, name, slot, rows)
    observe = gateway.metrics.scores.labels(name, slot.version).observe
    for score in scores:
        observe(score)
    answer = {
        "model": name,
        "version": slot.version,
        "predictions": scores,
        "request_id": request.state.request_id,
    }
    return Response(orjson.dumps(answer), media_type="application/json")


def _check_ranges(
    gateway: Gateway, name: str, slot: Slot, rows: list[dict[str, Any]]
) -> tuple[int, dict[str, int]]:
    """Rows outside the answering version's training profile; counted per field in the metrics."""
    assert slot.ranges is not None
    bad_rows, fields = slot.ranges.check(rows)
    for field, count in fields.items():
        gateway.metrics.out_of_range.labels(name, slot.version, field).inc(count)
    return bad_rows, fields


async def _score(
    gateway: Gateway, served: ServedModel, slot: Any, fallback: Any, rows: list[dict[str, Any]]
) -> tuple[list[float], Any]:
    model_rows = [{k: row[k] for k in slot.verified.inputs} for row in rows]
    try:
        return await slot.batcher.submit(model_rows), slot
    except Exception as exc:
        if fallback is None:
            raise HTTPException(
                500, f"model {served.name} v{slot.version} failed: {type(exc).__name__}"
            ) from exc
        gateway.metrics.challenger_errors.labels(served.name, slot.version).inc()
        return await fallback.batcher.submit(model_rows), fallback


class FeedbackReceipt(BaseModel):
    model: str
    accepted: int
    request_id: str


def not_issued_to(request_ids: RequestIds, labels: list[dict[str, Any]], principal: str) -> str | None:
    """The first request id of ``labels`` that was not issued to ``principal``, or None."""
    for label in labels:
        if not request_ids.issued_to(label["request_id"], principal):
            return str(label["request_id"])
    return None


@router.post("/{name}/feedback", status_code=202, response_model=FeedbackReceipt)
async def feedback(
    name: str, request: Request, caller: PredictCaller, request_ids: RequestIdsDep
) -> Response:
    """Ground-truth labels of earlier predictions (by their request_id), for the drift flow to join.

    Only the principal a prediction answered may label it: one request id issued to anyone else
    (or forged) refuses the whole body with 403. Accepted labels are written to the I/O log as one
    record of kind ``feedback`` with ``labels``; a refusal is a ``feedback`` record without them.
    """
    gateway: Gateway = request.app.state.gateway
    served_model(gateway, name)
    request.state.io.update(kind="feedback", model=name)
    refusal = gateway.writer.refusal()  # labels are only taken when their record can be written
    if refusal:
        raise HTTPException(503, refusal)
    raw = await read_capped(request, gateway.settings.max_body_bytes)
    try:
        labels = feedback_labels(parse_json(raw), gateway.settings.max_rows_per_request)
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    charge_rows(request, caller, len(labels))
    foreign = not_issued_to(request_ids, labels, caller.id)
    if foreign is not None:
        detail = f"request_id {foreign} was not issued to {caller.id}; label only your own predictions"
        request.state.io["error"] = f"feedback refused: {detail}"
        raise HTTPException(403, detail)
    request.state.io["labels"] = labels
    answer = {"model": name, "accepted": len(labels), "request_id": request.state.request_id}
    return Response(orjson.dumps(answer), status_code=202, media_type="application/json")


class ServingInfo(BaseModel):
    model: str
    champion: str | None
    challenger: str | None
    challenger_weight: int
    available: bool
    reason: str | None
    problems: list[str]


def serving_info(gateway: Gateway, name: str, details: bool = True) -> ServingInfo:
    """The serving state of a model; without ``details`` (a prediction client) only the short reason."""
    served = served_model(gateway, name)
    return ServingInfo(
        model=name,
        champion=served.champion.version if served.champion else None,
        challenger=served.challenger.version if served.challenger else None,
        challenger_weight=served.challenger_weight,
        available=served.unavailable() is None,
        reason=served.unavailable() if details else public_reason(served),
        problems=list(served.problems) if details else [],
    )


@router.get("/{name}")
async def info(name: str, gateway: GatewayDep, caller: ReaderCaller) -> ServingInfo:
    return serving_info(gateway, name, details=bool(caller.roles & {"auditor", "deployer"}))


class KillRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


async def kill_request(request: Request, gateway: Gateway) -> KillRequest:
    """The body of a kill, read only now that the deployer is authenticated."""
    raw = await read_capped(request, gateway.settings.max_control_body_bytes)
    try:
        return KillRequest.model_validate(parse_json(raw))
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise HTTPException(
            422, f'{where}: {error["msg"]}; send {{"reason": "<why, 3 to 500 characters>"}}'
        ) from None


@router.post("/{name}/kill")
async def kill(name: str, request: Request, gateway: GatewayDep, caller: DeployerCaller) -> ServingInfo:
    """Kill switch: the model answers 503 with the reason until revived. Body: ``{"reason": "..."}``.

    It holds on this gateway (on each of its worker processes) before the answer; written into the
    signed serving record, it holds on every gateway and across restarts. If the record cannot be
    written, this gateway keeps it, the answer lists why, and an alert is raised."""
    served = served_model(gateway, name)
    body = await kill_request(request, gateway)
    await asyncio.to_thread(gateway.hold_kill, name, body.reason)
    problem = await asyncio.to_thread(gateway.switch, name, body.reason, caller.id)
    if problem is None and served.killed == body.reason:
        await asyncio.to_thread(gateway.hold_kill, name, None)  # the record holds it now
    lagging = await gateway.everywhere()
    payload = {"reason": body.reason, "durable": problem is None, "problem": problem}
    await asyncio.to_thread(gateway.audit, "deployment.killed", caller.id, name, payload)
    info = _with_problem(serving_info(gateway, name), lagging)
    if problem is not None:
        alert = {"event": "govdeploy.gateway.kill_not_durable", "model": name, **payload}
        await asyncio.to_thread(post_alert, gateway.settings.alert_webhook, alert)
        info.problems.append(
            f"the kill holds on this gateway only (not written to the serving record): {problem}"
        )
    return info


@router.post("/{name}/revive")
async def revive(name: str, gateway: GatewayDep, caller: DeployerCaller) -> ServingInfo:
    """End the kill switch, in the signed serving record first: a revive that cannot be written
    changes nothing (503), since every other gateway would still follow the kill."""
    served_model(gateway, name)
    problem = await asyncio.to_thread(gateway.switch, name, None, caller.id)
    if problem is not None:
        raise HTTPException(503, f"model {name} stays shut down: the revive could not be recorded: {problem}")
    await asyncio.to_thread(gateway.hold_kill, name, None)
    lagging = await gateway.everywhere()
    await asyncio.to_thread(gateway.audit, "deployment.revived", caller.id, name, {})
    return _with_problem(serving_info(gateway, name), lagging)


@router.post("/{name}/reload")
async def reload(name: str, gateway: GatewayDep, caller: DeployerCaller) -> ServingInfo:
    """Reconcile with the registry now instead of at the next poll (every worker process of this
    gateway, before the answer)."""
    served_model(gateway, name)
    await asyncio.to_thread(gateway.state.refresh)
    lagging = await gateway.everywhere()
    return _with_problem(serving_info(gateway, name), lagging)


def _with_problem(info: ServingInfo, problem: str | None) -> ServingInfo:
    if problem is not None:
        info.problems.append(problem)
    return info
