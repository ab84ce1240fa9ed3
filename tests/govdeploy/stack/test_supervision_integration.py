"""A real MLflow server whose launcher dies: ``status`` (also the CLI's) reports the server that
still holds the port, ``up`` adopts it instead of failing on a busy port, ``down`` stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from govdeploy.config.settings import Settings
from govdeploy.stack import components, credentials, manager, process, procfs
from tests.conftest import CONFIG_DIR, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(
        state_dir=tmp_path,
        s3_port=free_port(),
        mlflow_port=free_port(),
        prefect_port=free_port(),
        gateway_port=free_port(),
    )
    credentials.init_server_credentials(settings.keys_dir)
    yield settings
    manager._stop_component(settings, components.mlflow(settings))


def cli_status(settings: Settings) -> dict[str, dict[str, object]]:
    env = {
        **os.environ,
        "GOVDEPLOY_STATE_DIR": str(settings.state_dir),
        "GOVDEPLOY_CONFIG_DIR": str(CONFIG_DIR),
        "GOVDEPLOY_S3_PORT": str(settings.s3_port),
        "GOVDEPLOY_MLFLOW_PORT": str(settings.mlflow_port),
        "GOVDEPLOY_PREFECT_PORT": str(settings.prefect_port),
        "GOVDEPLOY_GATEWAY_PORT": str(settings.gateway_port),
    }
    result = subprocess.run(
        [sys.executable, "-m", "govdeploy", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return {c["name"]: c for c in json.loads(result.stdout)["components"]}


def test_a_server_that_outlives_its_launcher_is_reported_adopted_and_stopped(settings: Settings) -> None:
    mlflow = components.mlflow(settings)
    child, record = manager._launch(settings, mlflow)
    process.wait_healthy("mlflow", child, mlflow.healthy, settings.start_timeout, Path(record.log))
    server = manager.component_status(settings, mlflow).pid
    assert server is not None and server != child.pid, "mlflow serves from a child of its launcher"
    assert server in procfs.listeners(settings.mlflow_port)

    child.send_signal(signal.SIGKILL)  # the launcher alone: its server keeps the port
    child.wait()
    assert not process.is_running(record)
    orphaned = cli_status(settings)["mlflow"]
    assert (orphaned["state"], orphaned["pid"]) == ("running", server)
    assert orphaned["detail"] == f"orphaned: launcher pid {child.pid} exited"

    actions: dict[str, str] = {}
    assert manager._keep_running(settings, mlflow, actions, lambda _: None)
    assert actions["mlflow"] == "already running, adopted"

    stopped = {c.name: c for c in manager.down(settings).components}
    assert stopped["mlflow"].action == "stopped" and stopped["mlflow"].state == "stopped"
    assert procfs.listeners(settings.mlflow_port) == []
    assert process.group_members(child.pid) == []
    assert not process.port_in_use(settings.host, settings.mlflow_port)
