"""Signed submissions: the submitter of a training run is proven, never a name typed in a form."""

from __future__ import annotations

from pathlib import Path

import pytest

from govdeploy.config.approvers import load_approvers
from govdeploy.errors import ApprovalError
from govdeploy.release.submission import submission_parameters, submission_token
from govdeploy.trust.keys import init_keys, load_ed25519_private
from govdeploy.trust.submissions import make_submission, sign_submission, verify_submission
from tests.conftest import CONFIG_DIR

PARAMETERS = submission_parameters(rows=2000, seed=3)


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_keys(directory, ["alice", "bob", "dana", "erin"])
    return directory


def check(keys_dir: Path, token: str, parameters: dict[str, object] = PARAMETERS) -> str:
    approvers = load_approvers(CONFIG_DIR / "approvers.yaml")
    return verify_submission(token, "credit-risk", parameters, approvers, keys_dir, 60)


def test_a_signed_submission_proves_its_submitter(keys_dir: Path) -> None:
    token = submission_token("credit-risk", PARAMETERS, "dana", keys_dir / "approvers" / "dana.key", 30)
    assert check(keys_dir, token) == "dana"


def test_a_name_signed_with_another_key_is_refused(keys_dir: Path) -> None:
    statement = make_submission("credit-risk", PARAMETERS, "alice", 30)  # "alice", signed by dana
    token = sign_submission(statement, load_ed25519_private(keys_dir / "approvers" / "dana.key"))
    with pytest.raises(ApprovalError, match="does not verify with the registered key of 'alice'"):
        check(keys_dir, token)


def test_a_submission_binds_the_run(keys_dir: Path) -> None:
    token = submission_token("credit-risk", PARAMETERS, "dana", keys_dir / "approvers" / "dana.key", 30)
    with pytest.raises(ApprovalError, match="sign a submission for this run"):
        check(keys_dir, token, submission_parameters(rows=2000, seed=4))


def test_unknown_people_garbage_and_long_validity_are_refused(keys_dir: Path) -> None:
    with pytest.raises(ApprovalError, match="not a signed submission token"):
        check(keys_dir, "not-a-token")
    statement = make_submission("credit-risk", PARAMETERS, "mallory", 30)
    token = sign_submission(statement, load_ed25519_private(keys_dir / "approvers" / "dana.key"))
    with pytest.raises(ApprovalError, match="approver 'mallory' is unknown"):
        check(keys_dir, token)
    long = submission_token("credit-risk", PARAMETERS, "dana", keys_dir / "approvers" / "dana.key", 600)
    with pytest.raises(ApprovalError, match="longer than the policy's 60 minutes"):
        check(keys_dir, long)
