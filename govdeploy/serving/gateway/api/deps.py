"""Dependencies of the gateway's routes: the gateway, its request ids and the authenticated principal.

They are ``async``: FastAPI runs plain ``def`` dependencies in a thread pool, which costs more than
the checks themselves on the prediction path.
"""

from __future__ import annotations

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


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a valid API key holding one of ``roles``, within its rate limit."""

    async def check(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> Principal:
        gateway: Gateway = request.app.state.gateway
        principal = gateway.keys.authenticate(x_api_key)
        if principal is None:
            raise HTTPException(401, "missing or invalid API key (header X-API-Key)")
        request.state.principal = principal.id
        # from now on the request id says whom it answered (see RequestIds): feedback checks it
        request_ids: RequestIds = request.app.state.request_ids
        request.state.request_id = request_ids.rebind(request.state.request_id, principal.id)
        if not principal.roles & set(roles):
            raise HTTPException(403, f"principal {principal.id} lacks role {' or '.join(roles)}")
        if not gateway.limiter.allow(principal):
            raise HTTPException(429, f"rate limit of {principal.rate_limit_per_minute}/min exceeded")
        return principal

    return check


PredictCaller = Annotated[Principal, Depends(require("predict"))]
DeployerCaller = Annotated[Principal, Depends(require("deployer"))]
AuditorCaller = Annotated[Principal, Depends(require("auditor", "deployer"))]
ReaderCaller = Annotated[Principal, Depends(require("predict", "auditor", "deployer"))]
