"""Roots of trust on the real stack, attacked as an insider with write access to MLflow and the
bucket but no private key: each attack is refused."""

from __future__ import annotations

from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from flows.train import train
from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import ApprovalError, RolloutError, SignatureError
from govdeploy.release.promotion import promote
from govdeploy.release.submission import submission_parameters, submission_token
from govdeploy.serving import rollout
from govdeploy.trust.approvals import ApprovalRequest, make_statement, parse_token, sign_statement
from govdeploy.trust.audit_trail import records
from govdeploy.trust.keys import load_ed25519_private, signing_key
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import verify_version
from tests.flows.conftest import MODEL, approve, promote_now, start_release, train_as, wait_for_state
from tests.flows.test_tampering_and_faults import prefix

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def released(stack: Settings) -> dict[str, Any]:
    """A version promoted to champion with two approvals, then a candidate that never was released."""
    champion = train_as("dana", model=MODEL, rows=2000, seed=71)
    promote_now(stack, champion)
    return champion


def _request(candidate: dict[str, Any], submitted_by: str = "dana") -> ApprovalRequest:
    return ApprovalRequest(
        flow_run_id="direct",
        model=MODEL,
        version=str(candidate["version"]),
        artifact_digest=str(candidate["artifact_digest"]),
        submitted_by=submitted_by,
        policy_digest="p" * 64,
    )


def _signed(stack: Settings, request: ApprovalRequest, *approvers: str) -> list[Any]:
    found = []
    for approver in approvers:
        key = load_ed25519_private(stack.keys_dir / "approvers" / f"{approver}.key")
        found.append(parse_token(sign_statement(make_statement(request, approver, "approve", "ok", 30), key)))
    return found


def test_a_candidate_signature_renamed_to_release_does_not_make_a_champion(
    stack: Settings, released: dict[str, Any]
) -> None:
    """candidate.sig copied to release.sig, a hand-set rollback target, a rollback: refused."""
    unreleased = train_as("dana", model=MODEL, rows=2000, seed=72)
    client, key_prefix = s3_client(stack), prefix(unreleased["version"])
    candidate_sig = client.get_object(Bucket=stack.bucket, Key=key_prefix + "candidate.sig")["Body"].read()
    client.put_object(Bucket=stack.bucket, Key=key_prefix + "release.sig", Body=candidate_sig)
    with pytest.raises(
        SignatureError,
        match=r"does not verify against its release\.sig|not made at release level",
    ):
        verify_version(
            MODEL,
            unreleased["version"],
            roots=load_roots(stack),
            level="release",
            tracking_uri=stack.mlflow_url,
        )
    # the rollback target comes from the signed serving history, never from a tag anyone can set
    mlflow.MlflowClient().set_model_version_tag(
        MODEL, released["version"], "govdeploy.rollback_target", unreleased["version"]
    )
    try:
        _, target = rollout.rollback_target(rollout.history(stack, MODEL), MODEL)
    except RolloutError:
        target = None
    assert target != unreleased["version"]
    assert rollout.serving_champion(stack, MODEL) == released["version"]


def test_approvals_are_re_checked_at_promotion_and_load(stack: Settings, released: dict[str, Any]) -> None:
    """One approver's statement twice (or the submitter's own) never reaches a release signature."""
    candidate = train_as("dana", model=MODEL, rows=2000, seed=73)
    request = _request(candidate)
    for approvals in (_signed(stack, request, "alice", "alice"), _signed(stack, request, "alice", "dana")):
        with pytest.raises(SignatureError, match="fewer than the quorum of 2"):
            promote(
                request,
                approvals,
                {"passed": True},
                "champion",
                signing_key=signing_key(stack, "release"),
                roots=load_roots(stack),
                tracking_uri=stack.mlflow_url,
            )
    assert mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version == released["version"]
    # a tag saying someone else submitted it changes nothing: the submitter is in the signed claims
    forged = _request(candidate, submitted_by="erin")
    with pytest.raises(SignatureError, match="dana submitted"):
        promote(
            forged,
            _signed(stack, forged, "alice", "dana"),
            {"passed": True},
            "champion",
            signing_key=signing_key(stack, "release"),
            roots=load_roots(stack),
            tracking_uri=stack.mlflow_url,
        )


def test_a_submitter_tag_edit_does_not_let_her_approve(stack: Settings, released: dict[str, Any]) -> None:
    candidate = train_as("dana", model=MODEL, rows=2000, seed=74)
    mlflow.MlflowClient().set_model_version_tag(MODEL, candidate["version"], "govdeploy.submitted_by", "erin")
    run_id = start_release(candidate["version"], approval_timeout_seconds=120)
    wait_for_state(run_id, "Paused")
    verdict = approve(stack, run_id, "dana")
    assert verdict is not None and verdict.action == "approval.refused"
    assert "dana submitted" in verdict.payload["reason"]


def test_an_unproven_submitter_needs_one_more_approval(stack: Settings, released: dict[str, Any]) -> None:
    claimed = train(model=MODEL, rows=2000, seed=75, submitted_by="dana")
    assert claimed["submission_proven"] is False
    request = _request(claimed).model_copy(update={"submission_proven": False})
    with pytest.raises(SignatureError, match="fewer than the quorum of 3"):
        promote(
            request,
            _signed(stack, request, "alice", "bob"),
            {"passed": True},
            "challenger",
            signing_key=signing_key(stack, "release"),
            roots=load_roots(stack),
            tracking_uri=stack.mlflow_url,
        )
    with pytest.raises(MlflowException):  # nothing moved: the challenger alias was never set
        mlflow.MlflowClient().get_model_version_by_alias(MODEL, "challenger")


def test_a_submission_for_another_run_is_refused_and_recorded(stack: Settings) -> None:
    key = stack.keys_dir / "approvers" / "dana.key"
    token = submission_token(MODEL, submission_parameters(rows=2000, seed=76), "dana", key, 30)
    with pytest.raises(ApprovalError, match="sign a submission for this run"):
        train(model=MODEL, rows=2000, seed=77, submission=token)
    refused = [r for r in records(stack, MODEL) if r.action == "submission.refused"]
    assert refused and "sign a submission for this run" in refused[-1].payload["reason"]
