"""Starting served deployments and following their runs through the Prefect API."""

from __future__ import annotations

import time
from typing import Any, cast
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments import run_deployment

from govdeploy.errors import GovdeployError


def start(deployment: str, parameters: dict[str, Any]) -> str:
    """Start a run of a served deployment (it runs in the deployments process); return its id."""
    run = cast(FlowRun, run_deployment(deployment, parameters=parameters, timeout=0))
    return str(run.id)


def wait_for_state(run_id: str, name: str, timeout: float = 300) -> State:
    """Wait until the run is in state ``name``; raise if it ends in another state or times out."""
    deadline = time.monotonic() + timeout
    state: State | None = None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(UUID(run_id)).state
            if state is not None and state.name == name:
                return state
            if state is not None and state.is_final():
                break
            time.sleep(0.5)
    found = f"{state.name}: {state.message}" if state else "unknown"
    raise GovdeployError(f"flow run {run_id} is {found}, not {name}")
