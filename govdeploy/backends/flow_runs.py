"""Flow runs through the Prefect API: start served deployments, follow runs, read and resume a
paused run. The only module of the core that talks to the Prefect API about runs."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectException
from prefect.flow_runs import resume_flow_run

from govdeploy.errors import GovdeployError
from govdeploy.polling import poll


def run_uuid(flow_run_id: str) -> UUID:
    try:
        return UUID(flow_run_id)
    except ValueError:
        raise GovdeployError(
            f"{flow_run_id!r} is not a flow run id (a UUID, shown in the Prefect UI)"
        ) from None


def read_run(flow_run_id: str) -> FlowRun:
    """The flow run; GovdeployError if the Prefect API does not know it."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_flow_run(run_uuid(flow_run_id))
        except ObjectNotFound:
            raise GovdeployError(f"flow run {flow_run_id} does not exist") from None


def resume(flow_run_id: str, run_input: dict[str, Any]) -> None:
    """Resume a paused run with ``run_input`` (the server checks it against the run's input schema)."""
    resume_flow_run(run_uuid(flow_run_id), run_input=run_input)


def wait_until_paused(flow_run_id: str, wait_seconds: float) -> FlowRun:
    """The run once it is paused; a running run is waited for, any other state is an error."""

    def paused_or_done() -> FlowRun | None:
        run = read_run(flow_run_id)
        return None if run.state is not None and run.state.is_running() else run

    run = poll(paused_or_done, timeout=wait_seconds) or read_run(flow_run_id)
    if run.state is None or not run.state.is_paused():
        name = run.state.name if run.state else "unknown"
        raise GovdeployError(f"flow run {flow_run_id} is not waiting for input (it is {name})")
    return run


def start(deployment: str, parameters: dict[str, Any]) -> str:
    """Start a run of a served deployment (it runs in the deployments process); return its id."""
    run = cast(FlowRun, run_deployment(deployment, parameters=parameters, timeout=0))
    return str(run.id)


def _wait(run_id: str, name: str | None, timeout: float) -> State | None:
    """Poll until the run is in state ``name`` or final; the last state seen (None: never read)."""
    seen: list[State | None] = [None]

    def reached() -> bool:
        seen[0] = state = read_run(run_id).state
        return state is not None and (state.name == name or state.is_final())

    poll(reached, timeout=timeout)
    return seen[0]


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

    def reached() -> FlowRun | None:
        for run in runs_since(deployment, since):
            if run.state is not None and (run.state.name == state if state else run.state.is_final()):
                return run
        return None

    found = poll(reached, timeout=timeout, interval=1.0)
    if found is None:
        raise GovdeployError(
            f"no run of {deployment} created since {since:.0f} reached {state or 'a final state'} "
            f"within {timeout:.0f} s"
        )
    return found


def live_runs(flow_name: str, parameters: dict[str, Any]) -> list[FlowRun]:
    """Runs of flow ``flow_name`` not yet ended (scheduled, pending, running, paused) whose
    parameters include ``parameters``; GovdeployError when the Prefect API cannot be read."""
    ended = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=ended))
                ),
            )
    except (PrefectException, httpx.HTTPError, OSError) as exc:
        raise GovdeployError(f"the runs of flow {flow_name!r} could not be read from Prefect: {exc}") from exc
    return [
        run
        for run in runs
        if all(str(run.parameters.get(key)) == str(value) for key, value in parameters.items())
    ]
