"""Helpers for flows on the real stack: start releases on the served deployment, approve them."""

from __future__ import annotations

import time
from uuid import UUID

import mlflow
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.deployments import run_deployment

from flows.approve import approval_token, submit
from govdeploy.audit import AuditRecord
from govdeploy.settings import Settings

MODEL = "credit-risk"


def start_release(version: str, **parameters: object) -> str:
    """Start the release flow on the served deployment (its own process); return the run id."""
    run = run_deployment(
        "release/release", parameters={"model": MODEL, "version": version, **parameters}, timeout=0
    )
    return str(run.id)


def wait_for_state(run_id: str, name: str, timeout: float = 240) -> State:
    deadline = time.monotonic() + timeout
    state = None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(UUID(run_id)).state
            if state is not None and state.name == name:
                return state
            if state is not None and state.is_final():
                break
            time.sleep(0.5)
    pytest.fail(
        f"flow run {run_id} is {state.name if state else None}, not {name}: {state.message if state else ''}"
    )


def approve(stack: Settings, run_id: str, approver: str) -> AuditRecord | None:
    key = stack.keys_dir / "approvers" / f"{approver}.key"
    return submit(stack, run_id, approval_token(stack, run_id, approver, key, "approve", "checked the gate"))


def reject(stack: Settings, run_id: str, approver: str, reason: str) -> AuditRecord | None:
    key = stack.keys_dir / "approvers" / f"{approver}.key"
    return submit(stack, run_id, approval_token(stack, run_id, approver, key, "reject", reason))


def version_tags(version: str) -> dict[str, str]:
    return dict(mlflow.MlflowClient().get_model_version(MODEL, version).tags)
