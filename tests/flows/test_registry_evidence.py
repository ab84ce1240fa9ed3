"""Registry evidence that stays true on the real stack: a released champion re-gated with a failing
gate keeps its release evidence and its stage; ``govdeploy.stage`` follows promotion, canary
completion, rollback and canary abort."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest

from flows.canary import canary_abort
from flows.release import release
from flows.rollback import rollback
from govdeploy.config.governance import load_governance
from govdeploy.config.settings import Settings
from govdeploy.errors import ValidationGateError
from govdeploy.release.data import generate_credit_data
from govdeploy.release.gate import GateReport
from govdeploy.trust.approvals import ApprovalRequest, make_statement, parse_token, sign_statement
from govdeploy.trust.keys import load_ed25519_private
from tasks.approval import promote_version
from tasks.canary import complete
from tests.flows.conftest import MODEL, approve, start_release, train_as, version_tags, wait_for_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def released(stack: Settings) -> dict[str, Any]:
    """A candidate released by the release flow on the served deployment, approved by alice and bob."""
    candidate = train_as("dana", model=MODEL, rows=3000, seed=61)
    assert version_tags(candidate["version"])["govdeploy.stage"] == "candidate"
    run_id = start_release(candidate["version"])
    wait_for_state(run_id, "Paused")
    assert version_tags(candidate["version"])["govdeploy.stage"] == "candidate"  # gated, not yet signed
    for approver in ("alice", "bob"):
        approve(stack, run_id, approver)
    wait_for_state(run_id, "Completed")
    return {**candidate, "release_run": run_id, "tags": version_tags(candidate["version"])}


def stage(version: str) -> str:
    return version_tags(version)["govdeploy.stage"]


def promote_as_challenger(stack: Settings, candidate: dict[str, Any]) -> None:
    """The release flow's promotion task, with a canary asked for, on two signed approvals."""
    version = str(candidate["version"])
    request = ApprovalRequest(
        flow_run_id="direct",
        model=MODEL,
        version=version,
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
    report = GateReport(model=MODEL, version=version, policy_digest="p" * 64, checks=[])
    config = load_governance(stack.config_dir, MODEL)
    promoted = promote_version(request, approvals, report, config, canary=True)
    assert promoted.alias == "challenger"


def test_a_released_champion_keeps_its_evidence_when_regated_with_a_failing_gate(
    stack: Settings, released: dict[str, Any], tmp_path: Path
) -> None:
    version, before = released["version"], released["tags"]
    assert before["govdeploy.stage"] == "champion"
    assert before["govdeploy.gate"] == "passed"
    gate_run = mlflow.get_run(before["govdeploy.gate.run_id"])
    assert (
        gate_run.data.tags["govdeploy.flow_run_id"] == released["release_run"]
    )  # the run it was promoted on
    assert json.loads(before["govdeploy.release"])["flow_run_id"] == released["release_run"]

    corrupted = generate_credit_data(1000, seed=42)
    corrupted.loc[:30, "income"] = -1.0
    corrupted.to_csv(tmp_path / "corrupted.csv", index=False)
    with pytest.raises(ValidationGateError, match="failed data validation"):
        release(model=MODEL, version=version, data_path=str(tmp_path / "corrupted.csv"))

    after = version_tags(version)
    for kept in ("govdeploy.release", "govdeploy.gate", "govdeploy.gate.run_id", "govdeploy.gate.summary"):
        assert after[kept] == before[kept], kept
    assert after["govdeploy.stage"] == "champion"
    latest = json.loads(after["govdeploy.gate.latest"])
    assert latest["gate"] == "failed" and latest["run_id"] != before["govdeploy.gate.run_id"]
    regate = mlflow.get_run(latest["run_id"])
    assert regate.data.tags["govdeploy.gate"] == "failed"
    assert regate.data.tags["govdeploy.flow_run_id"] == latest["flow_run_id"] != released["release_run"]
    report = mlflow.artifacts.load_dict(f"runs:/{latest['run_id']}/governance/gate_report.json")
    assert report["passed"] is False and "expect_column_values_to_be_between(income)" in report["summary"]


def test_stages_follow_promotion_canary_completion_rollback_and_abort(
    stack: Settings, released: dict[str, Any]
) -> None:
    champion = released["version"]
    trained = train_as("dana", model=MODEL, rows=3000, seed=62)
    challenger = trained["version"]
    promote_as_challenger(stack, trained)
    assert (stage(challenger), stage(champion)) == ("challenger", "champion")

    assert complete(MODEL, challenger) == champion
    assert (stage(challenger), stage(champion)) == ("champion", "retired")

    assert rollback(model=MODEL, reason="test") == {"model": MODEL, "from": challenger, "to": champion}
    assert (stage(challenger), stage(champion)) == ("rolled-back", "champion")

    trained = train_as("dana", model=MODEL, rows=3000, seed=63)
    aborted = trained["version"]
    promote_as_challenger(stack, trained)
    assert stage(aborted) == "challenger"
    assert canary_abort(model=MODEL, reason="test")["aborted"] == aborted
    assert (stage(aborted), stage(champion)) == ("rolled-back", "champion")

    left = train_as("dana", model=MODEL, rows=3000, seed=64)
    promote_as_challenger(stack, left)
    newer = train_as("dana", model=MODEL, rows=3000, seed=65)
    promote_as_challenger(stack, newer)  # replaces the challenger that was left at weight 0
    assert (stage(left["version"]), stage(newer["version"])) == ("retired", "challenger")
    assert canary_abort(model=MODEL, reason="test")["aborted"] == newer["version"]
