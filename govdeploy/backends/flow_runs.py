"""Flow runs through the Prefect API: start served deployments, follow runs, read and resume a
paused run, find and end the runs a dead process left behind. The only module of the core that
talks to the Prefect API about runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    FlowRunFilterEndTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.client.schemas.responses import OrchestrationResult, SetStateStatus
from prefect.deployments import run_deployment
from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound, PrefectException
from prefect.flow_runs import resume_flow_run
from prefect.states import Crashed

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


def _state_text(run: FlowRun) -> str:
    """The run's state for a message: its name, and its message once the run has ended."""
    if run.state is None:
        return "unknown"
    name = run.state.name or run.state.type.value
    return f"{name}: {run.state.message}" if run.state.is_final() and run.state.message else name


def resume(flow_run_id: str, run_input: dict[str, Any]) -> None:
    """Resume a paused run with ``run_input`` (the server checks it against the run's input schema);
    GovdeployError naming the run's state when it is not paused (any more)."""
    try:
        resume_flow_run(run_uuid(flow_run_id), run_input=run_input)
    except (NotPausedError, FlowPauseTimeout, RuntimeError) as exc:
        raise GovdeployError(
            f"flow run {flow_run_id} cannot be resumed ({exc}); it is {_state_text(read_run(flow_run_id))}"
        ) from None


def wait_until_paused(flow_run_id: str, wait_seconds: float) -> FlowRun:
    """The run once it is paused; a running run is waited for, any other state is an error."""

    def paused_or_done() -> FlowRun | None:
        run = read_run(flow_run_id)
        return None if run.state is not None and run.state.is_running() else run

    run = poll(paused_or_done, timeout=wait_seconds) or read_run(flow_run_id)
    if run.state is None or not run.state.is_paused():
        raise GovdeployError(f"flow run {flow_run_id} is not waiting for input (it is {_state_text(run)})")
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


UNFINISHED = [StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
PAGE = 200


@dataclass(frozen=True)
class RunSummary:
    """A flow run of a served deployment, as the Prefect API reported it."""

    id: str
    name: str
    deployment: str  # "<flow>/<deployment>"
    state_type: str  # PENDING, RUNNING, PAUSED, ...
    state_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    state_message: str = ""


def _deployment_ids(client: Any, names: Sequence[str]) -> dict[UUID, str]:
    """The ids of the deployments of ``names`` that exist (a first start has none yet)."""
    found: dict[UUID, str] = {}
    for name in names:
        try:
            found[client.read_deployment_by_name(name).id] = name
        except ObjectNotFound:
            continue
    return found


def unfinished_runs(deployments: Sequence[str]) -> list[RunSummary]:
    """Runs of the deployments named ``<flow>/<deployment>`` that are Pending, Running or Paused;
    never runs without a deployment (flows called in-process)."""
    return _runs(
        deployments, FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED)))
    )


def crashed_runs(deployments: Sequence[str], ended_after: datetime) -> list[RunSummary]:
    """Runs of the deployments that ended Crashed after ``ended_after`` (Prefect ends a run Crashed
    itself when its process is stopped by a signal)."""
    crashed = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CRASHED]))
    return _runs(
        deployments,
        FlowRunFilter(state=crashed, end_time=FlowRunFilterEndTime(after_=cast(Any, ended_after))),
    )


def _runs(deployments: Sequence[str], flow_run_filter: FlowRunFilter) -> list[RunSummary]:
    runs: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        ids = _deployment_ids(client, deployments)
        if not ids:
            return []
        while True:
            page = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(ids))),
                flow_run_filter=flow_run_filter,
                limit=PAGE,
                offset=len(runs),
            )
            runs += page
            if len(page) < PAGE:
                break
    return [
        RunSummary(
            id=str(run.id),
            name=run.name,
            deployment=ids.get(run.deployment_id, "?") if run.deployment_id else "?",
            state_type=run.state.type.value if run.state else "UNKNOWN",
            state_name=(run.state.name or run.state.type.value) if run.state else "unknown",
            parameters=dict(run.parameters),
            state_message=(run.state.message or "") if run.state else "",
        )
        for run in runs
    ]


def received_inputs(flow_run_id: str) -> list[str]:
    """The values (JSON text) sent to the run's pauses, answered or not, oldest key first."""
    with get_client(sync_client=True) as client:
        inputs = client.filter_flow_run_input(run_uuid(flow_run_id), "paused-", 1000, set())
    return [i.value for i in sorted(inputs, key=lambda i: i.key) if i.key.endswith("-response")]


def end_crashed(flow_run_id: str, message: str) -> str:
    """Put the run in state Crashed with ``message`` (forced: no process is left to propose it);
    the state name the API then holds. GovdeployError if the API does not accept it."""
    with get_client(sync_client=True) as client:
        result: OrchestrationResult[Any] = client.set_flow_run_state(
            run_uuid(flow_run_id), Crashed(message=message), force=True
        )
    if result.status != SetStateStatus.ACCEPT:
        reason = result.details.reason if hasattr(result.details, "reason") else result.status.value
        raise GovdeployError(f"the Prefect API did not end flow run {flow_run_id} as Crashed: {reason}")
    return (result.state.name if result.state else None) or "Crashed"
