"""Start, stop and inspect the stack.

On the external profile govdeploy owns no server: ``up`` checks that MLflow, Prefect and the
bucket answer (and the bucket has Object Lock) and starts nothing, ``down`` stops nothing,
``status`` reports what answers. What follows is the local profile.

With ``database`` postgres, ``up`` first creates the PostgreSQL cluster if there is none and runs
it, then creates MLflow's and Prefect's databases in it, before MLflow and Prefect start.

``up`` is idempotent: a healthy component is reported as already running and left alone, unless
it is one of govdeploy's own processes (deployments, gateway) started from other code or
configuration than the current, or a component started with other server credentials than those
in ``<keys>/servers/`` (or none: a stack started before MLflow and Prefect demanded credentials),
which is restarted; their data stays in the state directory. A server that answers anonymous
requests is unhealthy, so it is restarted too. If a component fails to start, the components this
call started are stopped again, and the error names the component and its log.

What runs is what ``supervision.find`` sees, not only the recorded launcher: a server whose
launcher exited is reported, adopted and stopped; one outside its pid record is adopted if nothing
about it needs checking (S3), else replaced; a port held by anything else is an error naming it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from govdeploy.config.settings import Settings
from govdeploy.errors import StackError
from govdeploy.stack import bucket, credentials, database, process, supervision
from govdeploy.stack.components import Component, all_components

State = Literal["running", "unhealthy", "stopped"]
Progress = Callable[[str], None]


class ComponentStatus(BaseModel):
    name: str
    state: State
    url: str
    pid: int | None
    log: str
    detail: str = ""  # how what runs differs from its pid record (an exited launcher, no record)
    action: str = ""


class StackStatus(BaseModel):
    state_dir: str
    components: list[ComponentStatus]
    profile: str = "local"
    database: str = ""  # of the local profile's MLflow and Prefect: sqlite or postgres

    @property
    def all_running(self) -> bool:
        return all(c.state == "running" for c in self.components)


def _record_path(settings: Settings, name: str) -> Path:
    return settings.state_dir / "run" / f"{name}.json"


def _log_path(settings: Settings, name: str) -> Path:
    return settings.state_dir / "logs" / f"{name}.log"


def _presence(settings: Settings, component: Component) -> supervision.Presence | None:
    record = process.read_record(_record_path(settings, component.name))
    return supervision.find(settings.state_dir, record, component.port)


EXTERNAL = "external: govdeploy neither starts nor stops it"


def component_status(settings: Settings, component: Component) -> ComponentStatus:
    if not component.owned:
        state: State = "running" if component.healthy() else "unhealthy"
        return ComponentStatus(
            name=component.name, state=state, url=component.url, pid=None, log="", detail=EXTERNAL
        )
    found = _presence(settings, component)
    state = "stopped"
    if found is not None:
        state = "running" if component.healthy() else "unhealthy"
    return ComponentStatus(
        name=component.name,
        state=state,
        url=component.url,
        pid=found.pid if found else None,
        log=str(_log_path(settings, component.name)),
        detail=found.note if found else supervision.foreign_note(settings.host, component.port),
    )


def status(settings: Settings) -> StackStatus:
    return StackStatus(
        state_dir=str(settings.state_dir),
        components=[component_status(settings, c) for c in all_components(settings)],
        profile=str(settings.profile),
        database=database.kind(settings) if settings.local else "",
    )


def _launch(
    settings: Settings, component: Component
) -> tuple[subprocess.Popen[bytes], process.ProcessRecord]:
    if component.port is not None and process.port_in_use(settings.host, component.port):
        raise StackError(
            f"{component.name}: port {component.port} on {settings.host} is already in use by "
            f"{supervision.port_holder(component.port)}, which is not part of this stack "
            f"({settings.state_dir}); stop it or set GOVDEPLOY_{component.name.upper()}_PORT to a free port"
        )
    log = _log_path(settings, component.name)
    child = process.spawn(component.name, component.command, component.env, log, settings.state_dir)
    record = process.ProcessRecord(
        name=component.name,
        pid=child.pid,
        start_ticks=process.start_ticks(child.pid) or 0,
        port=component.port,
        url=component.url,
        log=str(log),
        command=component.command,
        code=component.code,
        credentials=component.credentials,
    )
    process.write_record(_record_path(settings, component.name), record)
    return child, record


def up(settings: Settings, progress: Progress = lambda _: None) -> StackStatus:
    """Start every component that is not running; return the status with what was done.

    Components start in waves (S3 and PostgreSQL; then MLflow and Prefect side by side; then the
    deployments process and the gateway), each wave waiting for the health of the one before. On
    the external profile nothing starts: see ``check_external``.
    """
    if not settings.local:
        return check_external(settings, progress)
    store = database.kind(settings)  # refuses a database the state directory's data is not in
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    created = development_keys(settings)
    if created:
        progress(f"created development keys in {settings.keys_dir}: {', '.join(created)}")
    if store == "postgres":
        database.prepare(settings, progress)
    every = all_components(settings)
    started: list[Component] = []
    actions: dict[str, str] = {}
    try:
        for wave in _waves(every):
            launched = []
            for component in wave:
                if _keep_running(settings, component, actions, progress):
                    continue
                progress(f"starting {component.name} …")
                launched.append((component, *_launch(settings, component)))
                started.append(component)
            for component, child, _record in launched:
                process.wait_healthy(
                    component.name,
                    child,
                    component.healthy,
                    settings.start_timeout,
                    _log_path(settings, component.name),
                )
                actions.setdefault(component.name, "started")
                progress(f"{component.name} started at {component.url}")
            if any(c.name == "postgres" for c in wave):
                database.ensure_databases(settings, progress)
            if any(c.name == "s3" for c in wave):
                bucket.prepare(settings, progress)
            if any(c.name == "mlflow" for c in wave):
                done = credentials.ensure_viewer(settings.keys_dir, settings.mlflow_url)
                if done != "exists":
                    progress(f"MLflow user '{credentials.VIEWER_USER}' (read-only): {done}")
    except Exception:
        for component in reversed(started):
            _stop_component(settings, component)
        raise
    progress(credentials.ui_logins(settings))
    result = status(settings)
    for item in result.components:
        item.action = actions.get(item.name, "")
    return result


def check_external(settings: Settings, progress: Progress = lambda _: None) -> StackStatus:
    """The external profile's ``up``: start nothing, check that MLflow and Prefect answer and that
    the bucket exists with Object Lock; StackError naming every one that does not."""
    progress(
        "profile external: govdeploy starts no server here (MLflow, Prefect and S3 are run by others); "
        "checking that they answer"
    )
    checked, problems = [], []
    for component in all_components(settings):
        problem = _external_problem(settings, component)
        problems += [problem] if problem else []
        progress(f"{component.name} at {component.url}: {'answers' if problem is None else 'FAILED'}")
        checked.append(
            ComponentStatus(
                name=component.name,
                state="running" if problem is None else "unhealthy",
                url=component.url,
                pid=None,
                log="",
                detail=EXTERNAL,
                action="checked" if problem is None else "check failed",
            )
        )
    if problems:
        raise StackError("; ".join(problems) + " (GOVDEPLOY_PROFILE=external: govdeploy starts none of them)")
    progress(
        "the flows run on Prefect workers (prefect.yaml) or 'python -m flows.serve', the gateway with "
        "'govdeploy gateway'; govdeploy up starts neither on the external profile"
    )
    return StackStatus(state_dir=str(settings.state_dir), components=checked, profile="external")


def _external_problem(settings: Settings, component: Component) -> str | None:
    if component.name == "s3":
        return bucket.external_problem(settings)
    if component.healthy():
        return None
    return f"{component.name} at {component.url} does not answer its health check"


def _keep_running(
    settings: Settings, component: Component, actions: dict[str, str], progress: Progress
) -> bool:
    """True if the component runs as it should; otherwise stop what runs of it and return False."""
    current = component_status(settings, component)
    if current.state == "stopped":
        return False
    reason = _restart_reason(settings, component)
    if current.state == "running" and reason is None:
        adopted = _adopt(settings, component)
        actions[component.name] = "already running" + (", adopted" if adopted else "")
        note = f" ({current.detail})" if current.detail else ""
        progress(f"{component.name} {actions[component.name]} at {component.url}{note}")
        return True
    if reason is None:  # unhealthy
        reason = "fails its health check" + (
            " (it may answer anonymous requests or refuse the credentials in the keys directory)"
            if component.credentials
            else ""
        )
    progress(f"{component.name} {reason}; restarting it")
    actions[component.name] = f"restarted: {reason}"
    _stop_component(settings, component)
    return False


def development_keys(settings: Settings) -> list[str]:
    """Create the missing development keys: signing, audit, master, approvers, API keys, and the
    credentials of the MLflow and Prefect servers."""
    from govdeploy.config.approvers import load_approvers
    from govdeploy.serving.gateway.access import load_access
    from govdeploy.trust.keys import init_api_keys, init_keys

    created = init_keys(settings.keys_dir, sorted(load_approvers(settings.approvers_path).approvers))
    created += init_api_keys(settings.keys_dir, sorted(load_access(settings.access_path).principals))
    return created + credentials.init_server_credentials(settings.keys_dir)


WAVES = (("postgres", "s3"), ("mlflow", "prefect"), ("deployments", "gateway"))


def _waves(components: list[Component]) -> list[list[Component]]:
    by_name = {c.name: c for c in components}
    return [[by_name[name] for name in wave if name in by_name] for wave in WAVES]


def _outdated(settings: Settings, component: Component) -> bool:
    """A running component of ours started from other code or configuration than the current."""
    record = process.read_record(_record_path(settings, component.name))
    return bool(component.code) and record is not None and record.code != component.code


def _adopt(settings: Settings, component: Component) -> bool:
    """Record the process group of a server that runs outside its pid record; True if it did."""
    found = _presence(settings, component)
    if found is None or found.tracked:
        return found is not None and bool(found.note)  # an exited launcher: its group stays recorded
    log = str(_log_path(settings, component.name))
    record = supervision.adopted_record(found, component.name, component.port, component.url, log)
    process.write_record(_record_path(settings, component.name), record)
    return True


def _restart_reason(settings: Settings, component: Component) -> str | None:
    """Why a running component must restart: other code, or other (or no) server credentials, or
    no record of them."""
    found = _presence(settings, component)
    if found is not None and not found.tracked and (component.code or component.credentials):
        return f"runs outside its pid record ({found.note}), so its code and credentials are unknown"
    if _outdated(settings, component):
        return "runs older govdeploy code or configuration"
    record = process.read_record(_record_path(settings, component.name))
    if record is not None and record.credentials != component.credentials:
        return "runs without the current server credentials (started before they were created or changed)"
    return None


def _stop_component(settings: Settings, component: Component) -> bool:
    """Stop what runs of the component (see ``supervision.find``); True if something ran."""
    if not component.owned:
        return False
    found = _presence(settings, component)
    if found is not None and not process.stop_groups(found.groups, first=component.stop_signal):
        raise StackError(
            f"{component.name}: pid {found.pid} (process groups {sorted(found.groups)}) did not stop; "
            f"kill it (kill -9 {found.pid}) and run the command again"
        )
    _record_path(settings, component.name).unlink(missing_ok=True)
    return found is not None


def stop_one(settings: Settings, name: str) -> bool:
    """Stop one component (``up`` starts it again); True if it ran. For fault drills."""
    every = all_components(settings)
    found = [c for c in every if c.name == name]
    if not found:
        raise StackError(f"no component {name!r}; one of {', '.join(c.name for c in every)}")
    return _stop_component(settings, found[0])


def down(settings: Settings, progress: Progress = lambda _: None) -> StackStatus:
    """Stop every component, dependants first (on the external profile: none)."""
    actions: dict[str, str] = {}
    if not settings.local:
        progress("profile external: govdeploy started no server, so it stops none")
    for component in reversed(all_components(settings)):
        if not component.owned:
            actions[component.name] = "external: left running"
            continue
        if component.name == "s3" and component_status(settings, component).state == "running":
            bucket.save(settings, progress, _log_path(settings, "s3"))
        stopped = _stop_component(settings, component)
        actions[component.name] = "stopped" if stopped else "was not running"
        progress(f"{component.name} {actions[component.name]}")
    result = status(settings)
    for item in result.components:
        item.action = actions.get(item.name, "")
    return result
