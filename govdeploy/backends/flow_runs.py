"""Starting served deployments and following their runs through the Prefect API."""

from __future__ import annotations

import time
from typing import Any, cast
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments import run_deployment

from govdeploy.errors import GovdeployError


def start(deployment: str, parameters: dict[str, Any]) -> str:
    """Start a run of a served deployment (it runs in the deployments process); return its id."""
    run = cast(FlowRun, run_deployment(deployment, parameters=parameters, timeout=0))
    return str(run.id)


def _wait(run_id: str, name: str | None, timeout: float) -> State | None:
    """Poll until the run is in state ``name`` or final; the last state seen (None: never read)."""
    deadline = time.monotonic() + timeout
    state: State | None = None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(UUID(run_id)).state
            if state is not None and (state.name == name or state.is_final()):
                break
            time.sleep(0.5)
    return state


def wait_for_state(run_id: str, name: str, timeout: float = 300) -> State:
    """Wait until the run is in state ``name``; raise if it ends in another state or times out."""
    state = _wait(run_id, name, timeout)
    if state is not None and state.name == name:
        return state
    found = f"{state.name}: {state.message}" if state else "unknown"
    raise GovdeployError(f"flow run {run_id} is {found}, not {name}")


def wait_for_final(run_id: str, timeout: float = 300) -> State:
    """Wait until the run ends (Completed, Failed, Crashed, Cancelled); raise on timeout."""
    state = _wait(run_id, None, timeout)
    if state is None or not state.is_final():
        raise GovdeployError(f"flow run {run_id} did not end within {timeout:.0f} s ({state and state.name})")
    return state


def runs_since(deployment: str, since: float) -> list[FlowRun]:
    """Runs of a deployment created at or after ``since`` (epoch seconds), newest first."""
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
        )
    recent = [r for r in runs if r.created is not None and r.created.timestamp() >= since]
    return sorted(recent, key=lambda r: r.created.timestamp() if r.created else 0.0, reverse=True)


def wait_for_run(deployment: str, since: float, state: str | None = None, timeout: float = 300) -> FlowRun:
    """The first run of ``deployment`` created since ``since`` to reach ``state`` (None: any final state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs_since(deployment, since):
            if run.state is not None and (run.state.name == state if state else run.state.is_final()):
                return run
        time.sleep(1.0)
    raise GovdeployError(
        f"no run of {deployment} created since {since:.0f} reached {state or 'a final state'} "
        f"within {timeout:.0f} s"
    )
