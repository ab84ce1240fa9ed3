"""Helpers for flows on the real stack: start releases on the served deployment, approve them."""

from __future__ import annotations

import mlflow
import pytest
from prefect.client.schemas.objects import State

from flows import runs
from flows.approve import approval_token, submit
from govdeploy.audit import AuditRecord
from govdeploy.errors import GovdeployError
from govdeploy.settings import Settings

MODEL = "credit-risk"


def start_release(version: str, **parameters: object) -> str:
    """Start the release flow on the served deployment (its own process); return the run id."""
    return runs.start("release/release", {"model": MODEL, "version": version, **parameters})


def wait_for_state(run_id: str, name: str, timeout: float = 240) -> State:
    try:
        return runs.wait_for_state(run_id, name, timeout)
    except GovdeployError as exc:
        pytest.fail(str(exc))


def approve(stack: Settings, run_id: str, approver: str) -> AuditRecord | None:
    key = stack.keys_dir / "approvers" / f"{approver}.key"
    return submit(stack, run_id, approval_token(stack, run_id, approver, key, "approve", "checked the gate"))


def reject(stack: Settings, run_id: str, approver: str, reason: str) -> AuditRecord | None:
    key = stack.keys_dir / "approvers" / f"{approver}.key"
    return submit(stack, run_id, approval_token(stack, run_id, approver, key, "reject", reason))


def version_tags(version: str) -> dict[str, str]:
    return dict(mlflow.MlflowClient().get_model_version(MODEL, version).tags)
