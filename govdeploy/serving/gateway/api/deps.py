"""Dependencies of the gateway's routes: the gateway, its request ids and the authenticated principal.

They are ``async``: FastAPI runs plain ``def`` dependencies in a thread pool, which costs more than
the checks themselves on the prediction path. No route reads its body before its caller is known:
a request is authenticated (401, or 429 per client address for too many without a valid key),
then rate limited (429 with ``Retry-After``), then checked for the role (403).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from govdeploy.serving.gateway.access import Principal
from govdeploy.serving.gateway.parts import Gateway
from govdeploy.trust.request_ids import RequestIds


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_request_ids(request: Request) -> RequestIds:
    request_ids: RequestIds = request.app.state.request_ids
    return request_ids


RequestIdsDep = Annotated[RequestIds, Depends(get_request_ids)]


def too_many(wait: float, detail: str) -> HTTPException:
    """429 saying how many whole seconds to wait (``Retry-After``)."""
    return HTTPException(429, detail, headers={"Retry-After": str(max(1, math.ceil(wait)))})


def _refuse_anonymous(request: Request, gateway: Gateway) -> HTTPException:
    """401, or 429 once the client address sent too many requests without a valid key."""
    address = request.client.host if request.client else "unknown"
    per_minute = gateway.settings.anonymous_rate_limit_per_minute
    wait = gateway.limiter.admit_address(address, per_minute)
    if wait:
        return too_many(wait, f"too many requests without a valid API key from {address} ({per_minute}/min)")
    return HTTPException(401, "missing or invalid API key (header X-API-Key)")


async def authorize(request: Request, roles: tuple[str, ...]) -> Principal:
    """The caller of ``request`` by its X-API-Key, admitted within its rate limit and holding one of
    ``roles``; else 401 (or 429 per client address), 429 with ``Retry-After``, or 403."""
    gateway: Gateway = request.app.state.gateway
    principal = gateway.keys.authenticate(request.headers.get("x-api-key"))
    if principal is None:
        raise _refuse_anonymous(request, gateway)
    request.state.principal = principal.id
    # from now on the request id says whom it answered (see RequestIds): feedback checks it
    request_ids: RequestIds = request.app.state.request_ids
    request.state.request_id = request_ids.rebind(request.state.request_id, principal.id)
    wait = gateway.limiter.admit(principal)
    if wait:
        raise too_many(wait, f"rate limit of {principal.rate_limit_per_minute}/min exceeded")
    if principal.roles.isdisjoint(roles):
        raise HTTPException(403, f"principal {principal.id} lacks role {' or '.join(roles)}")
    return principal


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a valid API key holding one of ``roles``, within its rate limit."""

    # the header is declared for the API docs; ``authorize`` reads it from the request
    async def check(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> Principal:
        return await authorize(request, roles)

    return check


def charge_rows(request: Request, principal: Principal, rows: int) -> None:
    """Charge the rest of a request of ``rows`` rows to its principal's rate limit (one request per
    ``rows_per_rate_limit_request`` rows, rounded up; the first was taken on admission)."""
    gateway: Gateway = request.app.state.gateway
    cost = math.ceil(rows / gateway.settings.rows_per_rate_limit_request)
    gateway.limiter.charge(principal, cost - 1)


PredictCaller = Annotated[Principal, Depends(require("predict"))]
DeployerCaller = Annotated[Principal, Depends(require("deployer"))]
AuditorCaller = Annotated[Principal, Depends(require("auditor", "deployer"))]
ReaderCaller = Annotated[Principal, Depends(require("predict", "auditor", "deployer"))]
