"""Fuzzing submission tokens: any input is refused with ``ApprovalError`` (recorded as
``submission.refused`` by the train flow) or proves its signer once; never another exception."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govdeploy.config.approvers import load_approvers
from govdeploy.errors import ApprovalError
from govdeploy.release.submission import submission_parameters
from govdeploy.trust.audit import canonical
from govdeploy.trust.keys import init_keys
from govdeploy.trust.nonces import UsedNonces, submission_nonces
from govdeploy.trust.submissions import make_submission, verify_submission
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

PARAMETERS = submission_parameters(rows=2000, seed=3)
MAX_MINUTES = 60
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

submission_changes = overrides(
    {
        "model": st.sampled_from(("credit-risk", "fraud")),
        "parameters": st.dictionaries(st.text(max_size=8), json_values, max_size=4)
        | st.just({**PARAMETERS, "seed": 4}),
        "submitted_by": names,
        "nonce": st.sampled_from(("0" * 32, "../x")),
        "issued_at": timestamps,
        "expires_at": timestamps,
    }
)


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_keys(directory, list(PEOPLE))
    return directory


@pytest.fixture(scope="module")
def used(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsedNonces]:
    yield submission_nonces(tmp_path_factory.mktemp("state"))


def verify(token: str, keys_dir: Path, used: UsedNonces) -> str | None:
    """The proven signer, or None when refused (with a reason that a record can hold)."""
    approvers = load_approvers(CONFIG_DIR / "approvers.yaml")
    try:
        return verify_submission(
            token, "credit-risk", PARAMETERS, approvers, keys_dir, MAX_MINUTES, used=used, flow_run_id="run-f"
        )
    except ApprovalError as exc:  # the one refusal type; anything else fails the test
        assert str(exc) and len(str(exc)) < 2000
        canonical({"reason": str(exc)})
        return None


def assert_proven(person: str, statement: dict[str, Any]) -> None:
    assert person == statement["submitted_by"] and person in PEOPLE
    assert statement["model"] == "credit-risk" and canonical(statement["parameters"]) == canonical(PARAMETERS)
    issued, expires = (datetime.fromisoformat(statement[k]) for k in ("issued_at", "expires_at"))
    now = now_utc()
    assert issued <= now + timedelta(seconds=DEFAULT_CLOCK_SKEW_SECONDS)
    assert now - timedelta(seconds=5) < expires  # unexpired when verified, a moment ago
    assert timedelta(0) < expires - issued <= timedelta(minutes=MAX_MINUTES)


@FUZZ
@given(token=garbage)
def test_any_text_is_refused(keys_dir: Path, used: UsedNonces, token: str) -> None:
    assert verify(token, keys_dir, used) is None


@FUZZ
@given(changes=submission_changes, signer=st.sampled_from(PEOPLE))
def test_signed_submissions_with_any_fields_are_refused_or_proven_once(
    keys_dir: Path, used: UsedNonces, changes: dict[str, Any], signer: str
) -> None:
    statement = {**make_submission("credit-risk", PARAMETERS, signer, 30).model_dump(), **changes}
    token = signed_token(keys_dir, statement, signer)
    person = verify(token, keys_dir, used)
    if person is not None:
        assert_proven(person, statement)
        assert verify(token, keys_dir, used) is None  # used up: a replay is refused


@FUZZ
@given(
    position=st.integers(0, 2000), insert=st.text(max_size=8) | json_values.map(str), cut=st.integers(0, 8)
)
def test_a_damaged_submission_is_refused_or_still_proves_its_signer(
    keys_dir: Path, used: UsedNonces, position: int, insert: str, cut: int
) -> None:
    statement = make_submission("credit-risk", PARAMETERS, "dana", 30).model_dump()
    person = verify(mutated(signed_token(keys_dir, statement, "dana"), position, insert, cut), keys_dir, used)
    assert person in (None, "dana")
