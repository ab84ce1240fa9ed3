"""End to end on the real stack: train → release gates, the passing and the rejected paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.release import release
from flows.train import train
from govdeploy.config.settings import Settings
from govdeploy.errors import ApprovalError, PolicyGateError, ValidationGateError
from govdeploy.release.data import dataset_digest, generate_credit_data
from tests.flows.conftest import (
    MODEL,
    promote_now,
    reject,
    start_release,
    train_as,
    version_tags,
    wait_for_state,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fair(stack: Settings) -> dict[str, Any]:
    return train_as("dana", model=MODEL, rows=3000, seed=7)


@pytest.fixture(scope="module")
def biased(stack: Settings) -> dict[str, Any]:
    return train(model=MODEL, rows=3000, seed=8, label_bias=0.8)


def artifact_keys(prefix: str) -> set[str]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=prefix)))
    return {a.key for a in found if a.key}


def test_train_registers_a_candidate_with_its_evidence(
    stack: Settings, fair: dict[str, Any], tmp_path: Path
) -> None:
    tags = version_tags(fair["version"])
    assert tags["govdeploy.stage"] == "candidate"
    assert tags["govdeploy.submitted_by"] == "dana"
    assert tags["govdeploy.artifact_digest"] == fair["artifact_digest"]
    assert len(tags["govdeploy.signature.candidate.sha256"]) == 64
    assert tags["govdeploy.lineage.dataset_digest"] == dataset_digest(generate_credit_data(3000, seed=7))
    assert tags["govdeploy.lineage.dataset_rows"] == "3000"
    assert tags["govdeploy.owner.data"] == "Credit Data Office <credit-data@example.com>"
    assert len(tags["govdeploy.lineage.expectation_suite_digest"]) == 64

    run = mlflow.artifacts.download_artifacts(
        run_id=fair["run_id"], artifact_path="governance", dst_path=str(tmp_path)
    )
    env = json.loads((Path(run) / "environment.json").read_text())
    assert env["packages"]["scikit-learn"] and env["python"]["version"].startswith("3.11")
    assert env["git_commit"]
    sbom = json.loads((Path(run) / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert any(c["name"] == "scikit-learn" for c in sbom["components"])

    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{MODEL}/{fair['version']}", dst_path=str(tmp_path / "m")
        )
    )
    files = {p.name for p in model_dir.rglob("*") if p.is_file()}
    assert "model.skops" in files
    assert not {f for f in files if f.endswith((".pkl", ".pickle"))}
    example = (model_dir / "input_example.json").read_text()
    assert "@" not in example and "email" not in example
    info = mlflow.models.get_model_info(f"models:/{MODEL}/{fair['version']}")
    assert info.signature is not None
    assert "gender" not in info.signature.inputs.input_names()


def test_fair_candidate_passes_the_gates_and_waits_for_approval(
    stack: Settings, fair: dict[str, Any]
) -> None:
    run_id = start_release(fair["version"])
    assert wait_for_state(run_id, "Paused").is_paused()
    tags = version_tags(fair["version"])
    assert tags["govdeploy.gate"] == "passed"
    gate_run = mlflow.get_run(tags["govdeploy.gate.run_id"])
    assert gate_run.data.metrics["roc_auc"] >= 0.75
    assert "dpd_gender" in gate_run.data.metrics
    assert f"gate-credit-risk-v{fair['version']}" in artifact_keys("gate-credit-risk")
    reject(stack, run_id, "bob", "holding this release for the quarterly review")
    final = wait_for_state(run_id, "Failed")
    assert "rejected by bob" in (final.message or "")
    assert "govdeploy.release" not in version_tags(fair["version"])


def test_biased_candidate_fails_the_fairness_gate(stack: Settings, biased: dict[str, Any]) -> None:
    with pytest.raises(PolicyGateError, match="demographic parity difference across gender"):
        release(model=MODEL, version=biased["version"])
    tags = version_tags(biased["version"])
    assert tags["govdeploy.gate"] == "failed"
    assert "demographic parity" in tags["govdeploy.gate.summary"]
    report = mlflow.artifacts.load_dict(f"runs:/{tags['govdeploy.gate.run_id']}/governance/gate_report.json")
    assert report["passed"] is False
    assert report["policy_digest"] == tags["govdeploy.gate.policy_digest"]


def test_corrupted_evaluation_data_fails_validation(
    stack: Settings, fair: dict[str, Any], tmp_path: Path
) -> None:
    frame = generate_credit_data(1000, seed=42)
    frame.loc[:30, "income"] = -1.0
    path = tmp_path / "corrupted.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValidationGateError, match=r"expect_column_values_to_be_between\(income\)"):
        release(model=MODEL, version=fair["version"], data_path=str(path))
    assert version_tags(fair["version"])["govdeploy.gate"] == "failed"


def test_empty_evaluation_data_fails_validation(
    stack: Settings, fair: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "empty.csv"
    generate_credit_data(5).iloc[0:0].to_csv(path, index=False)
    with pytest.raises(ValidationGateError, match="it is empty"):
        release(model=MODEL, version=fair["version"], data_path=str(path))


def test_candidate_is_compared_with_the_champion(stack: Settings, fair: dict[str, Any]) -> None:
    client = mlflow.MlflowClient()
    promote_now(stack, fair)  # a signed release: the champion is verified as one, approvals included
    try:
        challenger = train_as("dana", model=MODEL, rows=3000, seed=11)
        with pytest.raises(ApprovalError, match="got 0 of 2 approvals"):
            release(model=MODEL, version=challenger["version"], approval_timeout_seconds=3)
    finally:
        client.delete_registered_model_alias(MODEL, "champion")
    tags = version_tags(challenger["version"])
    report = mlflow.artifacts.load_dict(f"runs:/{tags['govdeploy.gate.run_id']}/governance/gate_report.json")
    champion_checks = [c for c in report["checks"] if c["gate"] == "champion"]
    assert champion_checks and champion_checks[0]["name"] == f"roc_auc vs champion v{fair['version']}"


def test_cli_release_of_a_missing_version_fails_cleanly(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "govdeploy", "release", "--model", MODEL, "--version", "999"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=180,
    )
    assert result.returncode == 1
    assert "release failed: read model 'credit-risk' version 999" in result.stderr
    assert "Traceback" not in result.stderr
