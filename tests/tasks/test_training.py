"""The submitter step of training: a submission proves its signer for one run; a replay, or any
other refusal, is recorded as ``submission.refused`` before the run fails."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from govdeploy.config.governance import Governance, load_governance
from govdeploy.config.settings import Settings
from govdeploy.errors import ApprovalError
from govdeploy.release.submission import submission_parameters, submission_token
from govdeploy.trust.keys import init_keys
from tasks import training
from tests.conftest import CONFIG_DIR

PARAMETERS = submission_parameters(rows=2000, seed=3)


class Recorder:
    """Stands in for the audit task: the records the step writes."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def fn(self, action: str, payload: dict[str, Any], **_: Any) -> None:
        self.records.append((action, payload))


@pytest.fixture(scope="module")
def config() -> Governance:
    return load_governance(CONFIG_DIR, "credit-risk")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(state_dir=tmp_path / "state", config_dir=CONFIG_DIR)
    init_keys(settings.keys_dir, ["alice", "bob", "dana", "erin"])
    monkeypatch.setattr(training, "get_settings", lambda: settings)
    monkeypatch.setattr(training, "get_run_logger", lambda: logging.getLogger("test"))
    return settings


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(training, "audit_event", recorder)
    return recorder


def dana(settings: Settings) -> str:
    return submission_token(
        "credit-risk", PARAMETERS, "dana", settings.keys_dir / "approvers" / "dana.key", 30
    )


def test_a_replayed_submission_is_refused_and_recorded(
    settings: Settings, audit: Recorder, config: Governance
) -> None:
    token = dana(settings)
    first = training.prove_submitter.fn("credit-risk", PARAMETERS, token, None, config)
    assert first == training.Submitter(name="dana", proven=True) and audit.records == []
    with pytest.raises(ApprovalError, match=r"already used .*\(replay refused\)"):
        training.prove_submitter.fn("credit-risk", PARAMETERS, token, "dana", config)
    [(action, payload)] = audit.records
    assert action == "submission.refused" and "already used" in payload["reason"]
    assert payload["claimed"] == "dana"


def test_a_malformed_submission_is_recorded_with_a_bounded_claim(
    settings: Settings, audit: Recorder, config: Governance
) -> None:
    claimed = "\ud800" + "m" * 5000  # a flow parameter: any text
    with pytest.raises(ApprovalError, match="not a signed submission token"):
        training.prove_submitter.fn("credit-risk", PARAMETERS, "[" * 13_000, claimed, config)
    [(action, payload)] = audit.records
    assert action == "submission.refused"
    assert payload["claimed"].startswith("\\ud800mmm") and len(payload["claimed"]) < 400


def test_without_a_submission_the_submitter_is_only_claimed(
    settings: Settings, audit: Recorder, config: Governance
) -> None:
    claimed = training.prove_submitter.fn("credit-risk", PARAMETERS, None, "dana", config)
    assert claimed == training.Submitter(name="dana", proven=False) and audit.records == []
