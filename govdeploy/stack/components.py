"""The components of the stack: how each starts, where it listens, how it is checked.

On the local profile govdeploy runs them all (with ``database`` postgres, a PostgreSQL server
first). On the external profile the stack is the MLflow, Prefect and S3 others run: components
govdeploy neither starts nor stops (``owned`` false), only checks.

Every process the stack starts inherits this process's environment, ``PREFECT_*``, ``MLFLOW_*``
and ``AWS_*`` included; over it the stack sets only what its servers need to find each other and
authenticate (``client_env``, and each server's own settings).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govdeploy.backends.registry import http_limits
from govdeploy.backends.storage import LOCAL_CREDENTIALS, s3_client
from govdeploy.config.settings import PROJECT_ROOT, Database, Settings
from govdeploy.stack import bucket, credentials, database
from govdeploy.stack.health import (
    Check,
    all_ok,
    demands_credentials,
    deployment_ready,
    http_ok,
    prefect_client_auth,
)

LOCAL_S3_CREDENTIALS = LOCAL_CREDENTIALS  # the local endpoint's (it checks none)
# credentials of other servers, which MLflow's and Prefect's clients would send instead of the local
# stack's (Prefect prefers an API key to the auth string, MLflow a token to nothing)
FOREIGN_CREDENTIALS = ("PREFECT_API_KEY", "MLFLOW_TRACKING_TOKEN")
# what clients present to the stack's servers: a server started by the stack gets none of them from
# this process's environment, only what it needs itself
CLIENT_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING")


def local_s3_client(settings: Settings) -> Any:
    """A client of the local S3 endpoint with the local stack's development credentials."""
    return s3_client(settings, LOCAL_S3_CREDENTIALS)


@dataclass(frozen=True)
class Component:
    name: str
    port: int | None
    url: str
    command: list[str]
    env: dict[str, str]
    healthy: Check
    code: str = ""  # digest of the govdeploy code and configuration it runs (empty: not ours)
    credentials: str = ""  # fingerprint of the server credentials it runs with (empty: needs none)
    owned: bool = True  # False: an external server, which govdeploy neither starts nor stops
    stop_signal: int = signal.SIGTERM  # what asks it to stop (then SIGKILL after a grace period)


CODE_PACKAGES = ("govdeploy", "tasks", "flows")


def code_digest(config_dir: Path, root: Path = PROJECT_ROOT) -> str:
    """SHA-256 (16 hex) of govdeploy's Python sources and the configuration directory's files.

    A served process whose recorded digest differs runs outdated code or configuration: ``up``
    restarts it.
    """
    files = [path for package in CODE_PACKAGES for path in sorted((root / package).rglob("*.py"))]
    files += sorted(path for path in config_dir.rglob("*") if path.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def client_env(settings: Settings) -> dict[str, str]:
    """Environment of a process that uses the stack: the servers' URLs, govdeploy settings, the
    bounds of its clients' retries and, on the local profile (once ``keys init`` created them), the
    credentials of MLflow's service account and Prefect.

    On the external profile the URLs are those ``PREFECT_API_URL`` and ``MLFLOW_TRACKING_URI`` hold
    where set (``Settings`` refuses a govdeploy variable that disagrees), and the credentials are
    the operator's own variables, left as they are.
    """
    limits = client_limits(settings)
    if not settings.local:
        return {**_locations(settings), **limits}
    return {**_locations(settings), **limits, **credentials.client_credentials(settings.keys_dir)}


def environment_conflicts(settings: Settings) -> list[str]:
    """On the local profile: the clients' URL variables of this environment that name other servers
    than the local stack's (which ``client_env`` would replace), as messages naming the fix."""
    if not settings.local:
        return []
    found = []
    for name, value in _urls(settings).items():
        current = os.environ.get(name)
        if current and current.rstrip("/") != value:
            found.append(
                f"{name}={current} is set, but the local stack's server is {value}: to use {current}, set "
                f"GOVDEPLOY_PROFILE=external; to use the local stack, unset {name}"
            )
    for name in FOREIGN_CREDENTIALS:
        if os.environ.get(name):
            found.append(
                f"{name} is set, but the local stack's servers take only their own credentials: unset it, "
                "or set GOVDEPLOY_PROFILE=external to use the servers it is for"
            )
    return found


def client_limits(settings: Settings) -> dict[str, str]:
    """How long MLflow and Prefect clients retry a server that is down (the operator's values win):
    Prefect reads its settings once, at import, so they travel in the environment."""
    retries = os.environ.get("PREFECT_CLIENT_MAX_RETRIES", str(settings.dependency_retries))
    return {**http_limits(settings), "PREFECT_CLIENT_MAX_RETRIES": retries}


def _urls(settings: Settings) -> dict[str, str]:
    return {"PREFECT_API_URL": settings.prefect_api_url, "MLFLOW_TRACKING_URI": settings.mlflow_url}


def _locations(settings: Settings) -> dict[str, str]:
    """The servers' URLs and the govdeploy settings a child process must share with this one (the
    URLs as ``Settings`` resolved them: on the external profile, the operator's own)."""
    shared = {
        "GOVDEPLOY_PROFILE": str(settings.profile),
        "GOVDEPLOY_STATE_DIR": str(settings.state_dir),
        "GOVDEPLOY_CONFIG_DIR": str(settings.config_dir),
        "GOVDEPLOY_HOST": settings.host,
        "GOVDEPLOY_S3_PORT": str(settings.s3_port),
        "GOVDEPLOY_MLFLOW_PORT": str(settings.mlflow_port),
        "GOVDEPLOY_PREFECT_PORT": str(settings.prefect_port),
        "GOVDEPLOY_GATEWAY_PORT": str(settings.gateway_port),
        "GOVDEPLOY_BUCKET": settings.bucket,
        "GOVDEPLOY_EXPERIMENT": settings.experiment,
    }
    optional = {
        "GOVDEPLOY_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "GOVDEPLOY_S3_REGION": settings.s3_region,
    }
    progress_bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return {
        **_urls(settings),
        **shared,
        **{name: value for name, value in optional.items() if value is not None},
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": progress_bar,
    }


def _env(settings: Settings, extra: dict[str, str], client: bool = False) -> dict[str, str]:
    """A component's environment: this process's (without credentials for other servers), the
    stack's locations over it, and only for clients (govdeploy's own processes) the client
    credentials."""
    dropped = FOREIGN_CREDENTIALS if client else (*FOREIGN_CREDENTIALS, *CLIENT_CREDENTIALS)
    inherited = {name: value for name, value in os.environ.items() if name not in dropped}
    base = client_env(settings) if client else _locations(settings)
    quiet = {"MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true")}  # servers too
    return {**inherited, **quiet, **base, "PYTHONUNBUFFERED": "1", **extra}


def s3(settings: Settings) -> Component:
    return Component(
        name="s3",
        port=settings.s3_port,
        url=settings.s3_url,
        # moto, with conditional writes made atomic as S3 makes them (the audit trail's claims)
        command=[
            sys.executable,
            "-m",
            "govdeploy.stack.s3_emulator",
            "-H",
            settings.host,
            "-p",
            str(settings.s3_port),
        ],
        env=_env(settings, {}),
        # the bucket listing: a small answer (moto-api/data.json would serialise every object)
        healthy=http_ok(f"{settings.s3_url}/", expect="ListAllMyBucketsResult"),
    )


def mlflow(settings: Settings, store: Database = "sqlite") -> Component:
    """MLflow with its basic-auth app: the service account is admin, everybody else reads. Its
    artifacts go to the local S3 endpoint, with that endpoint's credentials."""
    on_postgres = store == "postgres"
    backend = (
        database.mlflow_store(settings) if on_postgres else f"sqlite:///{settings.state_dir / 'mlflow.db'}"
    )
    return Component(
        name="mlflow",
        port=settings.mlflow_port,
        url=settings.mlflow_url,
        command=[
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            settings.host,
            "--port",
            str(settings.mlflow_port),
            "--workers",
            "1",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            f"s3://{settings.bucket}/mlflow",
            "--serve-artifacts",
            "--app-name",
            "basic-auth",
        ],
        env=_env(
            settings,
            {
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "MLFLOW_S3_ENDPOINT_URL": settings.s3_url,
                **LOCAL_S3_CREDENTIALS,
                **credentials.mlflow_server_env(settings.keys_dir),
                **(database.server_env(settings) if on_postgres else {}),
            },
        ),
        healthy=all_ok(
            [
                http_ok(f"{settings.mlflow_url}/health", expect="OK"),
                demands_credentials(
                    f"{settings.mlflow_url}/api/2.0/mlflow/users/current",
                    credentials.mlflow_service_auth(settings.keys_dir),
                ),
            ]
        ),
        credentials=credentials.fingerprint(settings.keys_dir),
    )


def prefect(settings: Settings, store: Database = "sqlite") -> Component:
    return Component(
        name="prefect",
        port=settings.prefect_port,
        url=settings.prefect_ui_url,
        command=[
            _bin("prefect"),
            "server",
            "start",
            "--host",
            settings.host,
            "--port",
            str(settings.prefect_port),
        ],
        env=_env(settings, prefect_server_env(settings, store)),
        healthy=all_ok(
            [
                http_ok(f"{settings.prefect_api_url}/health", expect="true"),
                demands_credentials(
                    f"{settings.prefect_api_url}/admin/version", credentials.prefect_auth(settings.keys_dir)
                ),
            ]
        ),
        credentials=credentials.fingerprint(settings.keys_dir),
    )


def prefect_server_env(settings: Settings, store: Database = "sqlite") -> dict[str, str]:
    """The Prefect server's settings; its API and UI demand the stack's auth string. Its database
    under both names Prefect reads (an inherited older name must not win)."""
    on_postgres = store == "postgres"
    url = (
        database.prefect_store(settings)
        if on_postgres
        else f"sqlite+aiosqlite:///{settings.state_dir / 'prefect.db'}"
    )
    return {
        "PREFECT_HOME": str(settings.state_dir / "prefect"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": url,
        "PREFECT_API_DATABASE_CONNECTION_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": settings.prefect_api_url,
        **credentials.prefect_server_env(settings.keys_dir),
        **(database.server_env(settings) if on_postgres else {}),
    }


def postgres(settings: Settings) -> Component:
    """The PostgreSQL server of MLflow and Prefect (``database``): TCP on ``host`` only. SIGINT is
    its fast shutdown (SIGTERM would wait for every client to disconnect)."""
    command = [
        str(database.bin_dir(settings) / "postgres"),
        "-D",
        str(database.cluster_dir(settings)),
        "-h",
        settings.host,
        "-p",
        str(settings.postgres_port),
        "-c",
        "unix_socket_directories=",
    ]
    return Component(
        name="postgres",
        port=settings.postgres_port,
        url=f"postgresql://{settings.host}:{settings.postgres_port}",
        command=database.as_server_user(command),
        env=_env(settings, {}),
        healthy=lambda: database.accepts(settings),
        stop_signal=signal.SIGINT,
    )


DEPLOYMENTS = (
    "train/train",
    "release/release",
    "canary/canary",
    "canary-abort/canary-abort",
    "canary-watch/canary-watch",
    "rollback/rollback",
    "retrain/retrain",
    "drift/drift",
)


def deployments(settings: Settings, code: str) -> Component:
    """The process serving the project's Prefect deployments (runs flows started from the UI)."""
    auth = credentials.prefect_auth(settings.keys_dir)
    return Component(
        name="deployments",
        port=None,
        url=f"{settings.prefect_ui_url}/deployments",
        command=[sys.executable, "-m", "flows.serve"],
        env=_env(
            settings,
            {"PREFECT_HOME": str(settings.state_dir / "prefect"), "PYTHONPATH": str(PROJECT_ROOT)},
            client=True,
        ),
        healthy=all_ok(
            [
                deployment_ready(f"{settings.prefect_api_url}/deployments/name/{name}", auth)
                for name in DEPLOYMENTS
            ]
        ),
        code=code,
        credentials=credentials.fingerprint(settings.keys_dir),
    )


def gateway(settings: Settings, code: str) -> Component:
    """The governed serving gateway (verified models, access control, I/O logs, metrics), in
    ``gateway_workers`` processes; slow-header connections are closed, idle keep-alive ones after
    ``keep_alive_seconds`` (``govdeploy.serving.gateway.run``). Another worker count is another
    configuration: ``up`` restarts a gateway that runs with a different one."""
    workers = str(settings.gateway_workers)
    own = {
        "PYTHONPATH": str(PROJECT_ROOT),
        "GOVDEPLOY_GATEWAY_WORKERS": workers,
        "GOVDEPLOY_KEEP_ALIVE_SECONDS": str(settings.keep_alive_seconds),
    }
    return Component(
        name="gateway",
        port=settings.gateway_port,
        url=settings.gateway_url,
        command=[sys.executable, "-m", "govdeploy.serving.gateway.run", "--log-level", "warning"],
        env=_env(settings, own, client=True),
        healthy=http_ok(f"{settings.gateway_url}/healthz", expect='"ok"'),
        code=code if settings.gateway_workers == 1 else f"{code}-{workers}w",
        credentials=credentials.fingerprint(settings.keys_dir),
    )


def external(settings: Settings) -> list[Component]:
    """The external profile's servers: checked (their health, the bucket), never started."""

    def component(name: str, url: str, healthy: Check) -> Component:
        return Component(name=name, port=None, url=url, command=[], env={}, healthy=healthy, owned=False)

    return [
        component("s3", settings.s3_url, lambda: bucket.external_problem(settings) is None),
        component("mlflow", settings.mlflow_url, http_ok(f"{settings.mlflow_url}/health")),
        component(
            "prefect",
            settings.prefect_ui_url,
            http_ok(f"{settings.prefect_api_url}/health", auth=prefect_client_auth()),
        ),
    ]


def all_components(settings: Settings) -> list[Component]:
    """In start order: each may depend on those before it."""
    if not settings.local:
        return external(settings)
    code = code_digest(settings.config_dir)  # what govdeploy's own processes run
    store = database.kind(settings)
    servers = [s3(settings), mlflow(settings, store), prefect(settings, store)]
    first = [postgres(settings)] if store == "postgres" else []
    return [*first, *servers, deployments(settings, code), gateway(settings, code)]
