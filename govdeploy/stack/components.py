"""The components of the local stack: how each starts, where it listens, how it is checked."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govdeploy.backends.registry import http_limits
from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import PROJECT_ROOT, Settings
from govdeploy.stack import credentials
from govdeploy.stack.health import Check, all_ok, demands_credentials, deployment_ready, http_ok

# The local S3 endpoint accepts any credentials; these name the account in its logs only.
LOCAL_S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "govdeploy-local",
    "AWS_SECRET_ACCESS_KEY": "govdeploy-local-only",
    "AWS_DEFAULT_REGION": "us-east-1",
}


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
    bounds of its clients' retries, and (once ``keys init`` created them) the credentials of
    MLflow's service account and Prefect."""
    return {
        **_locations(settings),
        **client_limits(settings),
        **credentials.client_credentials(settings.keys_dir),
    }


def client_limits(settings: Settings) -> dict[str, str]:
    """How long MLflow and Prefect clients retry a server that is down (the operator's values win):
    Prefect reads its settings once, at import, so they travel in the environment."""
    retries = os.environ.get("PREFECT_CLIENT_MAX_RETRIES", str(settings.dependency_retries))
    return {**http_limits(settings), "PREFECT_CLIENT_MAX_RETRIES": retries}


def _locations(settings: Settings) -> dict[str, str]:
    return {
        "PREFECT_API_URL": settings.prefect_api_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_url,
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_url,
        "GOVDEPLOY_STATE_DIR": str(settings.state_dir),
        "GOVDEPLOY_CONFIG_DIR": str(settings.config_dir),
        "GOVDEPLOY_HOST": settings.host,
        "GOVDEPLOY_S3_PORT": str(settings.s3_port),
        "GOVDEPLOY_MLFLOW_PORT": str(settings.mlflow_port),
        "GOVDEPLOY_PREFECT_PORT": str(settings.prefect_port),
        "GOVDEPLOY_GATEWAY_PORT": str(settings.gateway_port),
        "GOVDEPLOY_BUCKET": settings.bucket,
        "GOVDEPLOY_EXPERIMENT": settings.experiment,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        **LOCAL_S3_CREDENTIALS,
    }


def _env(settings: Settings, extra: dict[str, str], client: bool = False) -> dict[str, str]:
    """A component's environment; only clients (govdeploy's own processes) get client credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    base = client_env(settings) if client else _locations(settings)
    return {**env, **base, "PYTHONUNBUFFERED": "1", **extra}


def s3(settings: Settings) -> Component:
    return Component(
        name="s3",
        port=settings.s3_port,
        url=settings.s3_url,
        command=[_bin("moto_server"), "-H", settings.host, "-p", str(settings.s3_port)],
        env=_env(settings, {}),
        # the bucket listing: a small answer (moto-api/data.json would serialise every object)
        healthy=http_ok(f"{settings.s3_url}/", expect="ListAllMyBucketsResult"),
    )


def mlflow(settings: Settings) -> Component:
    """MLflow with its basic-auth app: the service account is admin, everybody else reads."""
    database = settings.state_dir / "mlflow.db"
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
            f"sqlite:///{database}",
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
                **credentials.mlflow_server_env(settings.keys_dir),
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


def prefect(settings: Settings) -> Component:
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
        env=_env(settings, prefect_server_env(settings)),
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


def prefect_server_env(settings: Settings) -> dict[str, str]:
    """The Prefect server's settings; its API and UI demand the stack's auth string."""
    return {
        "PREFECT_HOME": str(settings.state_dir / "prefect"),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{settings.state_dir / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": settings.prefect_api_url,
        **credentials.prefect_server_env(settings.keys_dir),
    }


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
    """The governed serving gateway (verified models, access control, I/O logs, metrics)."""
    return Component(
        name="gateway",
        port=settings.gateway_port,
        url=settings.gateway_url,
        command=[
            sys.executable,
            "-m",
            "uvicorn",
            "govdeploy.serving.gateway.main:app",
            "--host",
            settings.host,
            "--port",
            str(settings.gateway_port),
            "--log-level",
            "warning",
            "--no-access-log",
            # slow-header connections are closed, idle keep-alive ones after a few seconds
            "--http",
            "govdeploy.serving.gateway.server:HeaderDeadline",
            "--timeout-keep-alive",
            str(settings.keep_alive_seconds),
        ],
        env=_env(settings, {"PYTHONPATH": str(PROJECT_ROOT)}, client=True),
        healthy=http_ok(f"{settings.gateway_url}/healthz", expect='"ok"'),
        code=code,
        credentials=credentials.fingerprint(settings.keys_dir),
    )


def all_components(settings: Settings) -> list[Component]:
    """In start order: each may depend on those before it."""
    code = code_digest(settings.config_dir)  # what govdeploy's own processes run
    servers = [s3(settings), mlflow(settings), prefect(settings)]
    return [*servers, deployments(settings, code), gateway(settings, code)]
