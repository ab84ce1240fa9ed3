"""Signed submissions: the submitter of a training run is proven, never a name typed in a form."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from govdeploy.config.approvers import load_approvers
from govdeploy.errors import ApprovalError
from govdeploy.release.submission import submission_parameters, submission_token
from govdeploy.trust.audit import canonical
from govdeploy.trust.keys import init_keys, load_ed25519_private
from govdeploy.trust.nonces import UsedNonces, submission_nonces
from govdeploy.trust.submissions import make_submission, sign_submission, verify_submission
from govdeploy.trust.validity import MAX_TOKEN_CHARS, iso, now_utc
from tests.conftest import CONFIG_DIR

PARAMETERS = submission_parameters(rows=2000, seed=3)


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_keys(directory, ["alice", "bob", "dana", "erin"])
    return directory


@pytest.fixture
def used(tmp_path: Path) -> UsedNonces:
    return submission_nonces(tmp_path / "state")


def check(
    keys_dir: Path,
    used: UsedNonces,
    token: str,
    parameters: dict[str, Any] = PARAMETERS,
    run: str = "run-1",
    claimed: str | None = None,
) -> str:
    approvers = load_approvers(CONFIG_DIR / "approvers.yaml")
    return verify_submission(
        token, "credit-risk", parameters, approvers, keys_dir, 60, used=used, flow_run_id=run, claimed=claimed
    )


def dana_token(keys_dir: Path, minutes: int = 30) -> str:
    return submission_token("credit-risk", PARAMETERS, "dana", keys_dir / "approvers" / "dana.key", minutes)


def signed_raw(keys_dir: Path, statement: dict[str, Any], signer: str = "dana") -> str:
    """A token over any statement document, signed with ``signer``'s real key."""
    key = load_ed25519_private(keys_dir / "approvers" / f"{signer}.key")
    signature = base64.b64encode(key.sign(canonical(statement))).decode()
    document = json.dumps({"statement": statement, "signature": signature}).encode()
    return base64.urlsafe_b64encode(document).decode()


def statement(**changes: Any) -> dict[str, Any]:
    return {**make_submission("credit-risk", PARAMETERS, "dana", 30).model_dump(), **changes}


def test_a_signed_submission_proves_its_submitter(keys_dir: Path, used: UsedNonces) -> None:
    assert check(keys_dir, used, dana_token(keys_dir)) == "dana"


def test_a_submission_counts_for_one_run_only(keys_dir: Path, used: UsedNonces) -> None:
    token = dana_token(keys_dir)
    assert check(keys_dir, used, token, run="run-1") == "dana"
    with pytest.raises(ApprovalError, match=r"already used by flow run run-1 at .*\(replay refused\)"):
        check(keys_dir, used, token, run="run-2")
    assert check(keys_dir, used, dana_token(keys_dir), run="run-2") == "dana"  # a fresh one holds


def test_the_used_nonces_outlive_the_process(keys_dir: Path, tmp_path: Path) -> None:
    """Another process of the same deployment (same state directory) refuses the replay too."""
    token = dana_token(keys_dir)
    check(keys_dir, submission_nonces(tmp_path), token)
    with pytest.raises(ApprovalError, match="already used"):
        check(keys_dir, submission_nonces(tmp_path), token, run="run-9")


def test_a_refused_submission_does_not_use_up_its_nonce(keys_dir: Path, used: UsedNonces) -> None:
    token = dana_token(keys_dir)
    with pytest.raises(ApprovalError, match="sign a submission for this run"):
        check(keys_dir, used, token, submission_parameters(rows=2000, seed=4))
    with pytest.raises(ApprovalError, match="not by the claimed 'alice'"):
        check(keys_dir, used, token, claimed="alice")
    assert check(keys_dir, used, token, claimed="dana") == "dana"


def test_a_name_signed_with_another_key_is_refused(keys_dir: Path, used: UsedNonces) -> None:
    made = make_submission("credit-risk", PARAMETERS, "alice", 30)  # "alice", signed by dana
    token = sign_submission(made, load_ed25519_private(keys_dir / "approvers" / "dana.key"))
    with pytest.raises(ApprovalError, match="does not verify with the registered key of 'alice'"):
        check(keys_dir, used, token)


def test_a_submission_binds_the_run(keys_dir: Path, used: UsedNonces) -> None:
    with pytest.raises(ApprovalError, match="sign a submission for this run"):
        check(keys_dir, used, dana_token(keys_dir), submission_parameters(rows=2000, seed=4))
    other = submission_token("fraud", PARAMETERS, "dana", keys_dir / "approvers" / "dana.key", 30)
    with pytest.raises(ApprovalError, match="for model 'fraud', not 'credit-risk'"):
        check(keys_dir, used, other)


def test_unknown_people_garbage_and_long_validity_are_refused(keys_dir: Path, used: UsedNonces) -> None:
    with pytest.raises(ApprovalError, match="not a signed submission token"):
        check(keys_dir, used, "not-a-token")
    made = make_submission("credit-risk", PARAMETERS, "mallory", 30)
    token = sign_submission(made, load_ed25519_private(keys_dir / "approvers" / "dana.key"))
    with pytest.raises(ApprovalError, match="approver 'mallory' is unknown"):
        check(keys_dir, used, token)
    with pytest.raises(ApprovalError, match="longer than the policy's 60 minutes"):
        check(keys_dir, used, dana_token(keys_dir, 600))


def _in(days: float = 0, minutes: float = 0) -> str:
    return iso(now_utc() + timedelta(days=days, minutes=minutes))


MALFORMED: list[tuple[Callable[[Path], str], str]] = [
    (lambda k: "[" * 6500 + "]" * 6500, "not base64url text"),
    (lambda k: base64.urlsafe_b64encode(b"[" * 4000 + b"]" * 4000).decode(), "recursion limit"),
    (lambda k: "A" * (MAX_TOKEN_CHARS + 4), "over the limit"),
    (lambda k: base64.urlsafe_b64encode(b"\xff\xfe{}").decode(), "Invalid JSON"),
    (lambda k: "é" + dana_token(k), "not base64url text"),
    (lambda k: dana_token(k)[:-3] + "*==", "not base64url text"),
    (lambda k: signed_raw(k, statement(issued_at="2026-01-01T10:00:00", expires_at=_in(0, 10))), "time zone"),
    (lambda k: signed_raw(k, statement(issued_at=_in(30), expires_at=_in(30, 30))), "in the future"),
    (lambda k: signed_raw(k, statement(issued_at="yesterday")), "not an ISO timestamp"),
    (lambda k: signed_raw(k, statement(issued_at="0001-01-01T00:00:00+14:00")), "out of range"),
    (lambda k: signed_raw(k, statement(expires_at=_in(0, -1))), "expired at"),
    (lambda k: signed_raw(k, statement(submitted_by="d" * 500)), "statement.submitted_by"),
    (lambda k: signed_raw(k, statement(parameters={"rows": 10**400})), "statement.parameters"),
    (lambda k: signed_raw(k, statement(parameters={"rows": [[[1]]]})), "statement.parameters"),
    (lambda k: signed_raw(k, statement(parameters={"shift": float("nan")})), "statement.parameters"),
    (lambda k: signed_raw(k, statement(nonce="../../etc/passwd")), "statement.nonce"),
    (lambda k: signed_raw(k, statement(rows=2000)), "Extra inputs are not permitted"),
    (lambda k: signed_raw(k, statement(model=7)), "statement.model"),
    (lambda k: signed_raw(k, statement(), signer="alice"), "does not verify"),
    (lambda k: signed_raw(k, statement(submitted_by="mallory")), "approver 'mallory' is unknown"),
]


@pytest.mark.parametrize(("make", "reason"), MALFORMED)
def test_malformed_submissions_are_refused_with_a_reason(
    keys_dir: Path, used: UsedNonces, make: Callable[[Path], str], reason: str
) -> None:
    with pytest.raises(ApprovalError) as refused:
        check(keys_dir, used, make(keys_dir))
    assert reason in str(refused.value)
    assert not used.directory.exists() or not any(used.directory.iterdir())  # nothing used up


def test_a_submission_within_the_clock_skew_holds(keys_dir: Path, used: UsedNonces) -> None:
    ahead = statement(issued_at=_in(minutes=1), expires_at=_in(minutes=31))
    assert check(keys_dir, used, signed_raw(keys_dir, ahead)) == "dana"
