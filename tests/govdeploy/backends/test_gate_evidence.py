"""Gate evidence on a version: a released version keeps the gate result it was promoted on; the
lifecycle stage is informational and setting it never raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from govdeploy.backends import registry
from govdeploy.backends.decisions import gate_version_tags

NOBODY = "http://127.0.0.1:9"  # discard port: nothing listens


@pytest.fixture(autouse=True)
def fail_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.chdir(tmp_path)


def evidence(verdict: str, run_id: str) -> dict[str, str]:
    return {"gate": verdict, "gate.run_id": run_id, "gate.policy_digest": "d" * 64, "gate.summary": '"s"'}


LATEST = json.dumps({"gate": "failed", "run_id": "r2"})


def test_an_unreleased_version_takes_each_gate_result() -> None:
    existing = {"govdeploy.stage": "candidate", "govdeploy.gate": "passed", "govdeploy.gate.run_id": "r1"}
    tags, kept = gate_version_tags(existing, evidence("failed", "r2"), LATEST)
    assert kept is None
    assert tags == {
        "govdeploy.gate.latest": LATEST,
        "govdeploy.gate": "failed",
        "govdeploy.gate.run_id": "r2",
        "govdeploy.gate.policy_digest": "d" * 64,
        "govdeploy.gate.summary": '"s"',
    }


def test_a_released_version_keeps_its_gate_evidence_and_says_so() -> None:
    existing = {"govdeploy.release": "{}", "govdeploy.gate": "passed", "govdeploy.gate.run_id": "r1"}
    tags, kept = gate_version_tags(existing, evidence("failed", "r2"), LATEST)
    assert tags == {"govdeploy.gate.latest": LATEST}  # nothing of the release's evidence is touched
    assert kept is not None
    assert "release evidence is kept (gate passed in run r1)" in kept
    assert "this gate run (failed) is recorded in run r2 and in govdeploy.gate.latest" in kept


def test_stages_are_the_lifecycle() -> None:
    assert registry.STAGES == ("candidate", "approved", "challenger", "champion", "retired", "rolled-back")


def test_a_stage_that_cannot_be_set_is_a_problem_not_an_error() -> None:
    problem = registry.set_stages("m", {"3": "champion", "2": "retired"}, NOBODY)
    assert problem is not None
    assert "govdeploy.stage of m v3 not set to 'champion'" in problem
    assert "govdeploy.stage of m v2 not set to 'retired'" in problem  # every version is tried
    assert problem.endswith("(the stage tag is informational; what serves is unchanged)")


def test_missing_versions_are_skipped_and_unknown_stages_refused() -> None:
    assert registry.set_stages("m", {None: "retired"}, NOBODY) is None  # nothing to contact
    problem = registry.set_stages("m", {"3": "live"}, NOBODY)  # type: ignore[dict-item]
    assert problem is not None and "'live' is not a stage" in problem
