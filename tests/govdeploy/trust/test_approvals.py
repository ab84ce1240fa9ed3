from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from govdeploy.config.approvers import load_approvers
from govdeploy.config.policy import ApprovalPolicy
from govdeploy.errors import ApprovalError, ConfigError, SignatureError
from govdeploy.trust.approval_ledger import ApprovalLedger, require_proven_submitter, verify_release_approvals
from govdeploy.trust.approvals import (
    ApprovalRequest,
    SignedStatement,
    make_statement,
    now_utc,
    sign_statement,
)
from govdeploy.trust.audit import canonical
from govdeploy.trust.keys import init_keys, load_ed25519_private
from govdeploy.trust.validity import MAX_TOKEN_CHARS
from tests.conftest import CONFIG_DIR

REQUEST = ApprovalRequest(
    flow_run_id="run-1",
    model="credit-risk",
    version="3",
    artifact_digest="a" * 64,
    submitted_by="dana",
    policy_digest="p" * 64,
)


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_keys(directory, ["alice", "bob", "dana", "erin"])
    return directory


@pytest.fixture
def ledger(keys_dir: Path) -> ApprovalLedger:
    policy = ApprovalPolicy(quorum=2, required_roles=["risk-officer"], statement_expiry_minutes=60)
    return ApprovalLedger(REQUEST, policy, load_approvers(CONFIG_DIR / "approvers.yaml"), keys_dir)


def token(
    keys_dir: Path,
    approver: str,
    request: ApprovalRequest = REQUEST,
    decision: str = "approve",
    minutes: int = 30,
    signer: str | None = None,
) -> str:
    statement = make_statement(request, approver, decision, "looks good", minutes)
    return sign_statement(
        statement, load_ed25519_private(keys_dir / "approvers" / f"{signer or approver}.key")
    )


def test_two_distinct_risk_officers_reach_the_quorum(ledger: ApprovalLedger, keys_dir: Path) -> None:
    first = ledger.consider(token(keys_dir, "alice"))
    assert first.accepted and first.reason == "approval 1 of 2 by alice"
    assert not ledger.quorum_reached
    assert ledger.consider(token(keys_dir, "bob")).accepted
    assert ledger.quorum_reached and ledger.approved_by == ["alice", "bob"]


def test_a_rejection_by_an_authorised_approver_is_accepted_as_rejection(
    ledger: ApprovalLedger, keys_dir: Path
) -> None:
    outcome = ledger.consider(token(keys_dir, "bob", decision="reject"))
    assert outcome.accepted and outcome.decision == "reject"
    assert outcome.reason == "rejected by bob: looks good"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda k: "not-a-token", "not a signed approval token"),
        (
            lambda k: token(k, "alice", signer="bob"),
            "does not verify with the registered key of approver 'alice'",
        ),
        (lambda k: token(k, "mallory", signer="alice"), "approver 'mallory' is unknown"),
        (
            lambda k: token(k, "erin"),
            "approver 'erin' has roles ['ml-engineer'], none of the required ['risk-officer']",
        ),
        (
            lambda k: token(k, "dana"),
            "dana submitted credit-risk v3 and cannot approve it (segregation of duties)",
        ),
        (
            lambda k: token(k, "alice", REQUEST.model_copy(update={"flow_run_id": "run-2"})),
            "for flow_run_id 'run-2', not 'run-1'",
        ),
        (
            lambda k: token(k, "alice", REQUEST.model_copy(update={"version": "2"})),
            "for version '2', not '3'",
        ),
        (
            lambda k: token(k, "alice", REQUEST.model_copy(update={"artifact_digest": "b" * 64})),
            "for artifact_digest",
        ),
        (lambda k: token(k, "alice", minutes=-1), "expired at"),
        (lambda k: token(k, "alice", minutes=600), "valid for longer than the policy's 60 minutes"),
    ],
)
def test_refusals_name_the_reason(ledger: ApprovalLedger, keys_dir: Path, make, reason: str) -> None:
    outcome = ledger.consider(make(keys_dir))
    assert not outcome.accepted
    assert reason in outcome.reason
    assert ledger.approved == []


def test_the_same_approver_twice_and_a_replay_are_refused(ledger: ApprovalLedger, keys_dir: Path) -> None:
    first = token(keys_dir, "alice")
    assert ledger.consider(first).accepted
    replay = ledger.consider(first)
    assert not replay.accepted and "was already used (replay)" in replay.reason
    again = ledger.consider(token(keys_dir, "alice"))
    assert not again.accepted and "alice has already approved" in again.reason
    assert not ledger.quorum_reached


def test_an_edited_statement_no_longer_verifies(ledger: ApprovalLedger, keys_dir: Path) -> None:
    signed = json.loads(base64.urlsafe_b64decode(token(keys_dir, "alice")))
    signed["statement"]["expires_at"] = (now_utc() + timedelta(days=30)).isoformat(timespec="seconds")
    forged = base64.urlsafe_b64encode(json.dumps(signed).encode()).decode()
    outcome = ledger.consider(forged)
    assert not outcome.accepted and "does not verify" in outcome.reason


def _approvers_yaml(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "approvers.yaml"
    path.write_text((CONFIG_DIR / "approvers.yaml").read_text() + extra)
    return path


def test_one_person_under_two_ids_is_refused(tmp_path: Path) -> None:
    twin = "  alice2:\n    name: Alice M.\n    email: Alice@Example.com\n    roles: [risk-officer]\n"
    twin += "    public_key_file: approvers/alice2.pub\n"
    with pytest.raises(ConfigError, match=r"approvers 'alice' and 'alice2' share one email"):
        load_approvers(_approvers_yaml(tmp_path, twin))


def test_one_key_file_under_two_ids_is_refused(tmp_path: Path) -> None:
    twin = "  mallory:\n    name: Mallory\n    email: mallory@example.com\n    roles: [risk-officer]\n"
    twin += "    public_key_file: approvers/alice.pub\n"
    with pytest.raises(ConfigError, match=r"approvers 'alice' and 'mallory' share one public_key_file"):
        load_approvers(_approvers_yaml(tmp_path, twin))


def test_one_key_under_two_ids_counts_once(tmp_path: Path, keys_dir: Path) -> None:
    """A copy of alice's key registered for another person: the release fails before counting."""
    copy = keys_dir / "approvers" / "mallory.pub"
    copy.write_bytes((keys_dir / "approvers" / "alice.pub").read_bytes())
    twin = "  mallory:\n    name: Mallory\n    email: mallory@example.com\n    roles: [risk-officer]\n"
    twin += "    public_key_file: approvers/mallory.pub\n"
    approvers = load_approvers(_approvers_yaml(tmp_path, twin))
    policy = ApprovalPolicy(quorum=2, required_roles=["risk-officer"])
    with pytest.raises(ConfigError, match=r"approvers 'alice' and 'mallory' have the same public key"):
        ApprovalLedger(REQUEST, policy, approvers, keys_dir)
    copy.unlink()


def test_a_missing_approver_key_fails_before_anyone_approves(tmp_path: Path) -> None:
    policy = ApprovalPolicy(quorum=2, required_roles=["risk-officer"])
    with pytest.raises(ConfigError, match=r"public key of approver 'alice' .*does not exist"):
        ApprovalLedger(REQUEST, policy, load_approvers(CONFIG_DIR / "approvers.yaml"), tmp_path)


def _document(keys_dir: Path, *approvers: str) -> bytes:
    statements = [
        SignedStatement.model_validate_json(base64.urlsafe_b64decode(token(keys_dir, a))) for a in approvers
    ]
    return canonical({"request": REQUEST.model_dump(), "approvals": [s.model_dump() for s in statements]})


RELEASE_RULES = ApprovalPolicy(quorum=2, required_roles=["risk-officer"])


def test_a_release_is_re_verified_against_its_approvals(keys_dir: Path) -> None:
    approvers = load_approvers(CONFIG_DIR / "approvers.yaml")
    document = _document(keys_dir, "alice", "bob")
    assert verify_release_approvals(document, REQUEST, RELEASE_RULES, approvers, keys_dir) == ["alice", "bob"]
    with pytest.raises(SignatureError, match="1 valid approvals, fewer than the quorum of 2"):
        verify_release_approvals(
            _document(keys_dir, "alice", "alice"), REQUEST, RELEASE_RULES, approvers, keys_dir
        )
    with pytest.raises(SignatureError, match="dana submitted credit-risk v3 and cannot approve it"):
        verify_release_approvals(
            _document(keys_dir, "alice", "dana"), REQUEST, RELEASE_RULES, approvers, keys_dir
        )
    other = REQUEST.model_copy(update={"artifact_digest": "b" * 64})
    with pytest.raises(SignatureError, match="it approves something else"):
        verify_release_approvals(document, other, RELEASE_RULES, approvers, keys_dir)
    with pytest.raises(SignatureError, match="not an approvals document"):
        verify_release_approvals(b"{}", REQUEST, RELEASE_RULES, approvers, keys_dir)


def test_a_statement_without_time_zone_is_refused(ledger: ApprovalLedger, keys_dir: Path) -> None:
    statement = make_statement(REQUEST, "alice", "approve", "ok", 30).model_copy(
        update={"issued_at": "2026-11-29T10:00:00", "expires_at": "2099-11-29T10:30:00"}
    )
    signed = sign_statement(statement, load_ed25519_private(keys_dir / "approvers" / "alice.key"))
    outcome = ledger.consider(signed)
    assert not outcome.accepted and "no time zone" in outcome.reason


def test_an_unproven_submitter_needs_one_more_approval_or_is_refused(keys_dir: Path) -> None:
    approvers = load_approvers(CONFIG_DIR / "approvers.yaml")
    unproven = REQUEST.model_copy(update={"submission_proven": False})
    policy = ApprovalPolicy(quorum=2, required_roles=["risk-officer"])
    ledger = ApprovalLedger(unproven, policy, approvers, keys_dir)
    for approver in ("alice", "bob"):
        ledger.consider(token(keys_dir, approver))
    assert ledger.required == 3 and not ledger.quorum_reached
    with pytest.raises(SignatureError, match="fewer than the quorum of 3"):
        verify_release_approvals(_document(keys_dir, "alice", "bob"), unproven, policy, approvers, keys_dir)
    refusing = policy.model_copy(update={"unproven_submission": "refuse"})
    with pytest.raises(SignatureError, match="the policy refuses such releases"):
        verify_release_approvals(_document(keys_dir, "alice", "bob"), unproven, refusing, approvers, keys_dir)
    with pytest.raises(ApprovalError, match="the policy refuses such releases"):
        require_proven_submitter(unproven, refusing)


def _raw_token(keys_dir: Path, statement: dict[str, object], signer: str = "alice") -> str:
    """A token over any statement document, signed with ``signer``'s real key."""
    key = load_ed25519_private(keys_dir / "approvers" / f"{signer}.key")
    signature = base64.b64encode(key.sign(canonical(statement))).decode()
    return base64.urlsafe_b64encode(
        json.dumps({"statement": statement, "signature": signature}).encode()
    ).decode()


def _statement(signer: str = "alice", **changes: object) -> dict[str, object]:
    return {**make_statement(REQUEST, signer, "approve", "ok", 30).model_dump(), **changes}


def _at(days: float = 0, minutes: float = 0) -> str:
    return (now_utc() + timedelta(days=days, minutes=minutes)).isoformat(timespec="seconds")


MALFORMED: list[tuple[Callable[[Path], str], str]] = [
    (lambda k: "[" * 6500 + "]" * 6500, "not base64url text"),
    (lambda k: base64.urlsafe_b64encode(b"[" * 4500 + b"]" * 4500).decode(), "recursion limit"),
    (lambda k: base64.urlsafe_b64encode(b'{"a":' * 2000 + b"1" + b"}" * 2000).decode(), "recursion limit"),
    (lambda k: "A" * (MAX_TOKEN_CHARS + 4), "over the limit"),
    (lambda k: base64.urlsafe_b64encode(b"\xff\xfe\x00{}").decode(), "Invalid JSON"),
    (lambda k: "\ud800" + token(k, "alice"), "not base64url text"),
    (lambda k: token(k, "alice")[:-2] + "!=", "not base64url text"),
    (lambda k: base64.urlsafe_b64encode(b"[1, 2]").decode(), "not a signed approval token"),
    (lambda k: _raw_token(k, _statement(issued_at="2026-11-29T10:00:00")), "no time zone"),
    (lambda k: _raw_token(k, _statement(expires_at="2099-11-29T10:00:00")), "no time zone"),
    (lambda k: _raw_token(k, _statement(issued_at=_at(30), expires_at=_at(30, 30))), "in the future"),
    (lambda k: _raw_token(k, _statement(issued_at=_at(0, 5), expires_at=_at(0, 30))), "in the future"),
    (lambda k: _raw_token(k, _statement(issued_at="0001-01-01T00:00:00+14:00")), "out of range"),
    (lambda k: _raw_token(k, _statement(expires_at="soon")), "not an ISO timestamp"),
    (
        lambda k: _raw_token(k, _statement(issued_at=_at(0, 1), expires_at=_at(0, 0.5))),
        "before it was issued",
    ),
    (lambda k: _raw_token(k, _statement(reason="x" * 5000)), "statement.reason"),
    (lambda k: _raw_token(k, _statement(approver="a" * 1000)), "statement.approver"),
    (lambda k: _raw_token(k, _statement(decision="maybe")), "statement.decision"),
    (lambda k: _raw_token(k, _statement(version=3)), "statement.version"),
    (lambda k: _raw_token(k, _statement(nonce="zz")), "statement.nonce"),
    (lambda k: _raw_token(k, _statement(quorum=1)), "Extra inputs are not permitted"),
    (lambda k: _raw_token(k, _statement(), signer="bob"), "does not verify"),
    (lambda k: _raw_token(k, _statement("mallory")), "approver 'mallory' is unknown"),
    (lambda k: _raw_token(k, _statement("erin"), signer="erin"), "none of the required ['risk-officer']"),
    (lambda k: _raw_token(k, _statement("dana"), signer="dana"), "segregation of duties"),
    # the signed bytes changed in transit ("run-1" becomes "rfoo1"): the signature covers other bytes
    (lambda k: token(k, "alice")[:40] + "Zm9v" + token(k, "alice")[44:], "does not verify"),
]


@pytest.mark.parametrize(("make", "reason"), MALFORMED)
def test_malformed_statements_are_refused_with_a_reason(
    ledger: ApprovalLedger, keys_dir: Path, make: Callable[[Path], str], reason: str
) -> None:
    outcome = ledger.consider(make(keys_dir))
    assert not outcome.accepted
    assert reason in outcome.reason
    assert ledger.approved == [] and ledger.seen_nonces == set()


def test_a_statement_within_the_clock_skew_counts(ledger: ApprovalLedger, keys_dir: Path) -> None:
    ahead = _statement(issued_at=_at(0, 1), expires_at=_at(0, 31))
    assert ledger.consider(_raw_token(keys_dir, ahead)).accepted


def test_the_clock_skew_is_the_ledgers_setting(keys_dir: Path) -> None:
    policy = ApprovalPolicy(quorum=2, required_roles=["risk-officer"])
    approvers = load_approvers(CONFIG_DIR / "approvers.yaml")
    strict = ApprovalLedger(REQUEST, policy, approvers, keys_dir, clock_skew_seconds=0)
    ahead = _raw_token(keys_dir, _statement(issued_at=_at(0, 1), expires_at=_at(0, 31)))
    outcome = strict.consider(ahead)
    assert not outcome.accepted and "0 s of clock skew allowed" in outcome.reason


def test_whitespace_around_and_inside_a_pasted_token_is_ignored(
    ledger: ApprovalLedger, keys_dir: Path
) -> None:
    good = token(keys_dir, "alice")
    wrapped = "\n".join(good[i : i + 76] for i in range(0, len(good), 76))
    assert ledger.consider(f"  {wrapped}\n").accepted


def test_a_tampered_approvals_document_is_refused_not_a_crash(keys_dir: Path) -> None:
    approvers = load_approvers(CONFIG_DIR / "approvers.yaml")
    for document in (b"[" * 50_000 + b"]" * 50_000, b"\xff", b'{"request": 1, "approvals": []}'):
        with pytest.raises(SignatureError, match="not an approvals document"):
            verify_release_approvals(document, REQUEST, RELEASE_RULES, approvers, keys_dir)
