"""Helpers for flows on the real stack: start releases on the served deployment, approve them."""

from __future__ import annotations

from typing import Any

import mlflow
import pytest
from prefect.client.schemas.objects import State

from govdeploy.backends import flow_runs
from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import GovdeployError
from govdeploy.release.approver import approval_token, submit
from govdeploy.release.submission import submission_parameters, submission_token
from govdeploy.trust.audit import AuditRecord
from govdeploy.trust.keys import signing_key
from govdeploy.trust.roots import load_roots

MODEL = "credit-risk"


def train_as(person: str, model: str = MODEL, **parameters: Any) -> dict[str, Any]:
    """Run the train flow with a submission signed by ``person`` over exactly these parameters."""
    from flows.train import train

    key = get_settings().keys_dir / "approvers" / f"{person}.key"
    token = submission_token(model, submission_parameters(**parameters), person, key, 30)
    result: dict[str, Any] = train(model=model, **parameters, submission=token)
    return result


def start_release(version: str, **parameters: object) -> str:
    """Start the release flow on the served deployment (its own process); return the run id."""
    return flow_runs.start("release/release", {"model": MODEL, "version": version, **parameters})


def wait_for_state(run_id: str, name: str, timeout: float = 240) -> State:
    try:
        return flow_runs.wait_for_state(run_id, name, timeout)
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


def promote_now(stack: Settings, candidate: dict[str, object], alias: str = "champion") -> None:
    """Promote a trained candidate with two signed approvals, without waiting on a release run."""
    from govdeploy.release.promotion import promote
    from govdeploy.serving import rollout
    from govdeploy.trust.approvals import ApprovalRequest, make_statement, parse_token, sign_statement
    from govdeploy.trust.keys import load_ed25519_private

    request = ApprovalRequest(
        flow_run_id="direct",
        model=MODEL,
        version=str(candidate["version"]),
        artifact_digest=str(candidate["artifact_digest"]),
        submitted_by="dana",
        policy_digest="p" * 64,
    )
    approvals = []
    for approver in ("alice", "bob"):
        key = load_ed25519_private(stack.keys_dir / "approvers" / f"{approver}.key")
        parsed = parse_token(sign_statement(make_statement(request, approver, "approve", "ok", 30), key))
        assert parsed is not None
        approvals.append(parsed)
    promote(
        request,
        approvals,
        {"passed": True},
        alias,
        signing_key=signing_key(stack, "release"),
        roots=load_roots(stack),
        tracking_uri=stack.mlflow_url,
    )
    record, _ = rollout.promote(stack, MODEL, str(candidate["version"]), alias, "test")
    assert rollout.sync_registry(stack, record) is None
