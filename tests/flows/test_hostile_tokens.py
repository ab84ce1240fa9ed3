"""Hostile tokens on the real stack: a replayed submission and malformed approval inputs are
refused and recorded, and the release keeps waiting for valid approvals."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from flows.train import train
from govdeploy.backends import flow_runs
from govdeploy.config.settings import Settings
from govdeploy.errors import ApprovalError
from govdeploy.release.approver import pending_request
from govdeploy.release.submission import submission_parameters, submission_token
from govdeploy.trust.approvals import make_statement, now_utc, sign_statement
from govdeploy.trust.audit_trail import records
from govdeploy.trust.keys import load_ed25519_private
from govdeploy.trust.validity import iso
from tests.flows.conftest import MODEL, approve, start_release, wait_for_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def replayed(stack: Settings) -> dict[str, Any]:
    """A candidate trained with dana's submission, then the same token replayed by another run."""
    key = stack.keys_dir / "approvers" / "dana.key"
    parameters = {"rows": 2000, "seed": 81}
    token = submission_token(MODEL, submission_parameters(**parameters), "dana", key, 30)
    candidate: dict[str, Any] = train(model=MODEL, **parameters, submission=token)
    with pytest.raises(ApprovalError) as refused:
        train(model=MODEL, **parameters, submission=token)
    return {**candidate, "refusal": str(refused.value)}


def test_a_replayed_submission_is_refused_and_recorded(stack: Settings, replayed: dict[str, Any]) -> None:
    assert replayed["submitted_by"] == "dana" and replayed["submission_proven"] is True
    assert "already used by flow run" in replayed["refusal"] and "replay refused" in replayed["refusal"]
    refused = [r for r in records(stack, MODEL) if r.action == "submission.refused"]
    assert refused and refused[-1].payload["reason"] == replayed["refusal"]
    assert refused[-1].payload["flow_run_id"]  # the run that tried the replay


def _statement(stack: Settings, run_id: str, approver: str, issued_at: str, expires_at: str) -> str:
    request = pending_request(stack, run_id)
    statement = make_statement(request, approver, "approve", "ok", 30).model_copy(
        update={"issued_at": issued_at, "expires_at": expires_at}
    )
    return sign_statement(statement, load_ed25519_private(stack.keys_dir / "approvers" / f"{approver}.key"))


def test_malformed_approvals_are_recorded_and_the_release_still_completes(
    stack: Settings, replayed: dict[str, Any]
) -> None:
    run_id = start_release(replayed["version"])
    wait_for_state(run_id, "Paused")
    later = now_utc() + timedelta(days=30)
    hostile = [
        "[" * 13_000,
        base64.urlsafe_b64encode(b"[" * 4500 + b"]" * 4500).decode(),
        _statement(stack, run_id, "erin", "2026-01-01T10:00:00", "2099-01-01T10:30:00"),  # naive
        _statement(stack, run_id, "alice", iso(later), iso(later + timedelta(minutes=30))),  # future
    ]
    for token in hostile:
        flow_runs.wait_until_paused(run_id, 60)
        flow_runs.resume(run_id, {"token": token})
    for approver in ("alice", "bob"):
        outcome = approve(stack, run_id, approver)
        assert outcome is not None and outcome.action == "approval.accepted", outcome
    wait_for_state(run_id, "Completed")
    mine = [r for r in records(stack, MODEL) if r.version == replayed["version"]]
    refusals = [r.payload["reason"] for r in mine if r.action == "approval.refused"]
    assert len(refusals) == len(hostile)  # every attempt has its record
    assert "not base64url text" in refusals[0] and "recursion limit" in refusals[1]
    assert "no time zone" in refusals[2] and "in the future" in refusals[3]
    assert [r.action for r in mine].count("approval.accepted") == 2
