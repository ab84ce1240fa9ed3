"""A stack started before MLflow demanded credentials: ``up`` finds its server open, restarts it
with authentication, and keeps its data (an MLflow server alone, on its own state directory)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from govdeploy.config.settings import Settings
from govdeploy.stack import components, credentials, manager, process
from govdeploy.stack.health import http_ok
from tests.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(
        state_dir=tmp_path, mlflow_port=free_port(), s3_port=free_port(), prefect_port=free_port()
    )
    yield settings
    manager._stop_component(settings, components.mlflow(settings))


def start_unauthenticated_mlflow(settings: Settings) -> None:
    """MLflow as an earlier govdeploy started it: no auth app, a record without credentials."""
    current = components.mlflow(settings)
    old = dataclasses.replace(
        current,
        command=[arg for arg in current.command if arg not in ("--app-name", "basic-auth")],
        healthy=http_ok(f"{settings.mlflow_url}/health", expect="OK"),
        credentials="",
    )
    child, _record = manager._launch(settings, old)
    process.wait_healthy(
        "mlflow", child, old.healthy, settings.start_timeout, manager._log_path(settings, "mlflow")
    )


def test_up_restarts_an_open_mlflow_with_authentication_and_keeps_its_data(settings: Settings) -> None:
    start_unauthenticated_mlflow(settings)
    api = f"{settings.mlflow_url}/api/2.0/mlflow"
    created = httpx.post(f"{api}/experiments/create", json={"name": "before-auth"}, timeout=10)
    assert created.status_code == 200  # anybody could write

    manager.development_keys(settings)  # `keys init` after the upgrade
    mlflow = components.mlflow(settings)
    assert manager.component_status(settings, mlflow).state == "unhealthy"  # open: not as configured
    actions: dict[str, str] = {}
    messages: list[str] = []
    assert not manager._keep_running(settings, mlflow, actions, messages.append)
    assert actions["mlflow"].startswith("restarted: runs without the current server credentials")
    assert manager.component_status(settings, mlflow).state == "stopped"

    child, _record = manager._launch(settings, mlflow)
    process.wait_healthy(
        "mlflow", child, mlflow.healthy, settings.start_timeout, manager._log_path(settings, "mlflow")
    )
    assert credentials.ensure_viewer(settings.keys_dir, settings.mlflow_url) == "created"
    assert credentials.ensure_viewer(settings.keys_dir, settings.mlflow_url) == "exists"
    query = {"experiment_name": "before-auth"}
    assert httpx.get(f"{api}/experiments/get-by-name", params=query, timeout=10).status_code == 401
    service = credentials.mlflow_service_auth(settings.keys_dir)
    kept = httpx.get(f"{api}/experiments/get-by-name", params=query, auth=service, timeout=10)
    assert kept.json()["experiment"]["experiment_id"] == created.json()["experiment_id"]
    assert manager._restart_reason(settings, mlflow) is None
    assert manager.component_status(settings, mlflow).state == "running"
