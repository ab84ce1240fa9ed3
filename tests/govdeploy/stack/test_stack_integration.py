"""The real local stack, started by ``govdeploy up`` (session fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.stack import manager

pytestmark = pytest.mark.integration


def test_every_component_runs_and_answers(stack: Settings) -> None:
    status = manager.status(stack)
    assert status.all_running, status
    assert {c.name: c.url for c in status.components}["mlflow"] == stack.mlflow_url


def test_second_up_reports_what_already_runs(stack: Settings) -> None:
    again = manager.up(stack)
    assert [c.action for c in again.components] == ["already running"] * 5


def test_bucket_is_versioned_and_object_locked(stack: Settings) -> None:
    client = s3_client(stack)
    lock = client.get_object_lock_configuration(Bucket=stack.bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert client.get_bucket_versioning(Bucket=stack.bucket)["Status"] == "Enabled"


def test_status_json_for_scripts(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "govdeploy", "status", "--json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=True,
    )
    payload = json.loads(result.stdout)
    assert payload["state_dir"] == str(stack.state_dir)
    assert {c["name"]: c["state"] for c in payload["components"]} == {
        "s3": "running",
        "mlflow": "running",
        "prefect": "running",
        "deployments": "running",
        "gateway": "running",
    }
    gateway = payload["gateway"]  # what the gateway tells a deployer: health and the I/O backlog
    assert gateway["status"] in ("ok", "failing") and isinstance(gateway["problems"], list)
    assert {"io_records_pending", "io_backlog_batches", "io_backlog_oldest_seconds"} <= set(gateway)
