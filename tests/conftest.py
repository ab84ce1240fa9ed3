"""Shared fixtures: one real local stack (moto S3, MLflow, Prefect, deployments) per session.

The stack is started by govdeploy's own ``up`` on free loopback ports in a temporary state
directory, and stopped by ``down`` at the end of the session.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from govdeploy.config.settings import Settings, get_settings

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of the session's stack, also exported as GOVDEPLOY_* for tasks and subprocesses."""
    patch = pytest.MonkeyPatch()
    values = {
        "GOVDEPLOY_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        "GOVDEPLOY_CONFIG_DIR": str(CONFIG_DIR),
        "GOVDEPLOY_S3_PORT": str(free_port()),
        "GOVDEPLOY_MLFLOW_PORT": str(free_port()),
        "GOVDEPLOY_PREFECT_PORT": str(free_port()),
        "GOVDEPLOY_GATEWAY_PORT": str(free_port()),
        "GOVDEPLOY_USER": "test-trainer",
    }
    for key, value in values.items():
        patch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    patch.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Settings]:
    """The running local stack; Prefect and MLflow clients of this process point at it."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from govdeploy.stack.components import client_env
    from govdeploy.stack.manager import down, up

    status = up(stack_settings)
    assert status.all_running, status
    patch = pytest.MonkeyPatch()
    for key, value in client_env(stack_settings).items():
        patch.setenv(key, value)
    try:
        with temporary_settings(
            updates={
                PREFECT_API_URL: stack_settings.prefect_api_url,
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            }
        ):
            yield stack_settings
    finally:
        patch.undo()
        final = down(stack_settings)
        assert all(c.state == "stopped" for c in final.components), final
