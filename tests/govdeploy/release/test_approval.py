"""The approval wait: every attempt is judged and recorded, malformed ones included, and the run
keeps waiting for valid approvals."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from govdeploy.config.approvers import load_approvers
from govdeploy.config.policy import ApprovalPolicy
from govdeploy.errors import ApprovalError, ApprovalTimeoutError
from govdeploy.release.approval import collect_approvals, window_seconds
from govdeploy.trust.approval_ledger import ApprovalLedger, Outcome
from govdeploy.trust.approvals import ApprovalRequest, Decision, make_statement, now_utc, sign_statement
from govdeploy.trust.keys import init_keys, load_ed25519_private
from govdeploy.trust.validity import iso
from tests.conftest import CONFIG_DIR

REQUEST = ApprovalRequest(
    flow_run_id="run-1",
    model="credit-risk",
    version="3",
    artifact_digest="a" * 64,
    submitted_by="dana",
    policy_digest="p" * 64,
)
POLICY = ApprovalPolicy(quorum=2, required_roles=["risk-officer"], statement_expiry_minutes=60)


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_keys(directory, ["alice", "bob", "dana", "erin"])
    return directory


def signed(keys_dir: Path, approver: str, decision: Decision = "approve", future: bool = False) -> str:
    statement = make_statement(REQUEST, approver, decision, "checked", 30)
    if future:
        later = now_utc() + timedelta(days=30)
        statement = statement.model_copy(
            update={"issued_at": iso(later), "expires_at": iso(later + timedelta(minutes=30))}
        )
    return sign_statement(statement, load_ed25519_private(keys_dir / "approvers" / f"{approver}.key"))


def run(keys_dir: Path, tokens: list[str]) -> tuple[list[Outcome], list[int], ApprovalLedger]:
    ledger = ApprovalLedger(REQUEST, POLICY, load_approvers(CONFIG_DIR / "approvers.yaml"), keys_dir)
    recorded: list[Outcome] = []
    asked: list[int] = []
    queue = iter(tokens)

    def ask(attempt: int, remaining: int, last: str) -> str | None:
        asked.append(attempt)
        return next(queue, None)

    collect_approvals(ledger, 60, ask, recorded.append)
    return recorded, asked, ledger


def test_malformed_attempts_are_recorded_and_the_wait_goes_on(keys_dir: Path) -> None:
    hostile = [
        "[" * 13_000,
        base64.urlsafe_b64encode(b"[" * 9000 + b"]" * 9000).decode()[:16_000],
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        signed(keys_dir, "erin"),  # a key holder without the role
        signed(keys_dir, "dana"),  # the submitter
        signed(keys_dir, "alice", future=True),  # issued 30 days ahead
    ]
    alice, bob = signed(keys_dir, "alice"), signed(keys_dir, "bob")
    recorded, asked, ledger = run(keys_dir, [*hostile, alice, alice, bob])
    assert len(recorded) == len(asked) == len(hostile) + 3  # attempts == records
    assert [o.accepted for o in recorded] == [False] * len(hostile) + [True, False, True]
    assert all(o.reason for o in recorded)
    assert "in the future" in recorded[5].reason and "replay" in recorded[7].reason
    assert ledger.quorum_reached and ledger.approved_by == ["alice", "bob"]


def test_a_rejection_ends_the_wait_after_its_record(keys_dir: Path) -> None:
    ledger = ApprovalLedger(REQUEST, POLICY, load_approvers(CONFIG_DIR / "approvers.yaml"), keys_dir)
    recorded: list[Outcome] = []
    tokens = iter(["garbage", signed(keys_dir, "bob", "reject")])
    with pytest.raises(ApprovalError, match="rejected by bob: checked; nothing was promoted"):
        collect_approvals(ledger, 60, lambda *_: next(tokens, None), recorded.append)
    assert [o.accepted for o in recorded] == [False, True]


def test_the_window_closing_ends_the_wait(keys_dir: Path) -> None:
    ledger = ApprovalLedger(REQUEST, POLICY, load_approvers(CONFIG_DIR / "approvers.yaml"), keys_dir)
    recorded: list[Outcome] = []
    tokens = iter([signed(keys_dir, "alice"), "x"])
    with pytest.raises(ApprovalTimeoutError, match=r"got 1 of 2 approvals \(\['alice'\]\)"):
        collect_approvals(ledger, 60, lambda *_: next(tokens, None), recorded.append)
    assert len(recorded) == 2
    assert window_seconds(POLICY, 30) == 30 and window_seconds(POLICY) == POLICY.timeout_minutes * 60
