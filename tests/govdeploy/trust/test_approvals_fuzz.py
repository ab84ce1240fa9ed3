"""Fuzzing the approval step's entry point: any input is refused with a reason that can be
recorded, or counted as a verified approval; never another exception (that would fail the release
without an audit record)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govdeploy.config.approvers import load_approvers
from govdeploy.config.policy import ApprovalPolicy
from govdeploy.errors import ApprovalError
from govdeploy.trust.approval_ledger import ApprovalLedger
from govdeploy.trust.approvals import ApprovalRequest, make_statement, read_approval_token
from govdeploy.trust.audit import canonical
from govdeploy.trust.keys import init_keys
from govdeploy.trust.validity import DEFAULT_CLOCK_SKEW_SECONDS, now_utc
from tests.conftest import CONFIG_DIR
from tests.govdeploy.trust.fuzzing import (
    PEOPLE,
    garbage,
    json_values,
    mutated,
    names,
    overrides,
    signed_token,
    timestamps,
)

REQUEST = ApprovalRequest(
    flow_run_id="run-1",
    model="credit-risk",
    version="3",
    artifact_digest="a" * 64,
    submitted_by="dana",
    policy_digest="p" * 64,
)
POLICY = ApprovalPolicy(quorum=2, required_roles=["risk-officer"], statement_expiry_minutes=60)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

statement_changes = overrides(
    {
        "flow_run_id": st.sampled_from(("run-1", "run-2")),
        "version": st.sampled_from(("3", "2")),
        "decision": st.sampled_from(("approve", "reject", "maybe")),
        "reason": st.text(max_size=50) | st.integers(1990, 2010).map(lambda n: "r" * n),
        "approver": names,
        "nonce": st.sampled_from(("0" * 32, "zz")),
        "issued_at": timestamps,
        "expires_at": timestamps,
    }
)


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_keys(directory, list(PEOPLE))
    return directory


def fresh_ledger(keys_dir: Path) -> ApprovalLedger:
    return ApprovalLedger(REQUEST, POLICY, load_approvers(CONFIG_DIR / "approvers.yaml"), keys_dir)


def assert_valid_now(issued_at: str, expires_at: str) -> None:
    issued, expires, now = datetime.fromisoformat(issued_at), datetime.fromisoformat(expires_at), now_utc()
    assert issued.tzinfo is not None and expires.tzinfo is not None
    assert issued <= now + timedelta(seconds=DEFAULT_CLOCK_SKEW_SECONDS)
    assert now - timedelta(seconds=5) < expires  # unexpired when verified, a moment ago
    assert timedelta(0) < expires - issued <= timedelta(minutes=POLICY.statement_expiry_minutes)


def assert_refused_or_verified(ledger: ApprovalLedger, token: str) -> None:
    with contextlib.suppress(ApprovalError):  # the one refusal type; anything else fails the test
        ledger.check(read_approval_token(token))
    outcome = ledger.consider(token)
    if outcome.accepted:
        assert outcome.signed is not None and outcome.approver in ("alice", "bob")
        verified = outcome.signed.statement
        assert verified.approver == outcome.approver and verified.flow_run_id == REQUEST.flow_run_id
        assert_valid_now(verified.issued_at, verified.expires_at)
        return
    assert outcome.reason and len(outcome.reason) < 2000
    statement = outcome.signed.statement if outcome.signed else None
    # what tasks/approval.py records for a refusal must be writable canonical JSON
    canonical(
        {
            "reason": outcome.reason,
            "claimed_approver": statement.approver if statement else None,
            "decision": statement.decision if statement else None,
            "nonce": statement.nonce if statement else None,
        }
    )


@FUZZ
@given(token=garbage)
def test_any_text_is_refused_with_a_reason(keys_dir: Path, token: str) -> None:
    ledger = fresh_ledger(keys_dir)
    assert_refused_or_verified(ledger, token)
    assert not ledger.approved


@FUZZ
@given(changes=statement_changes, signer=st.sampled_from(PEOPLE))
def test_signed_statements_with_any_fields_are_refused_or_verified(
    keys_dir: Path, changes: dict[str, Any], signer: str
) -> None:
    statement = {**make_statement(REQUEST, signer, "approve", "ok", 30).model_dump(), **changes}
    assert_refused_or_verified(fresh_ledger(keys_dir), signed_token(keys_dir, statement, signer))


@FUZZ
@given(
    signer=st.sampled_from(PEOPLE),
    position=st.integers(0, 2000),
    insert=st.text(max_size=8) | json_values.map(str),
    cut=st.integers(0, 8),
)
def test_a_damaged_token_is_refused_or_still_verifies(
    keys_dir: Path, signer: str, position: int, insert: str, cut: int
) -> None:
    statement = make_statement(REQUEST, signer, "approve", "ok", 30).model_dump()
    token = mutated(signed_token(keys_dir, statement, signer), position, insert, cut)
    assert_refused_or_verified(fresh_ledger(keys_dir), token)


def test_the_fuzzed_statements_do_reach_acceptance(keys_dir: Path) -> None:
    """The strategies' baseline is a valid statement: fuzzing explores around acceptance."""
    statement = make_statement(REQUEST, "alice", "approve", "ok", 30).model_dump()
    assert fresh_ledger(keys_dir).consider(signed_token(keys_dir, statement, "alice")).accepted
