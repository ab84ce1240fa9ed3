from __future__ import annotations

import json
from pathlib import Path

import pytest

from govdeploy.config.governance import Governance, load_governance
from govdeploy.config.suites import load_suite
from govdeploy.errors import PolicyGateError
from govdeploy.release.data import generate_credit_data, split_frame
from govdeploy.release.evaluation import evaluate_model, privacy_findings
from govdeploy.release.gate import decide, require_pass
from govdeploy.release.training import fit
from govdeploy.release.validation import validate_frame
from govdeploy.release.vulnerabilities import VulnerabilityScan, scan
from tests.conftest import CONFIG_DIR


@pytest.fixture(scope="module")
def gov() -> Governance:
    return load_governance(CONFIG_DIR, "credit-risk")


@pytest.fixture(scope="module")
def evaluation_data():
    return generate_credit_data(3000, seed=1234)


def trained(gov: Governance, seed: int, label_bias: float = 0.0):
    train, test = split_frame(generate_credit_data(5000, seed=seed, label_bias=label_bias), 0.2, seed)
    return fit(gov.spec, train, test)[0]


@pytest.fixture(scope="module")
def validation(gov: Governance, evaluation_data):
    return validate_frame(evaluation_data, load_suite(CONFIG_DIR / "expectations/credit_risk.json"), 500)


def test_fair_model_passes_every_check(gov: Governance, evaluation_data, validation) -> None:
    evaluation = evaluate_model(
        trained(gov, 7), evaluation_data, gov.spec, gov.spec.features, gov.policy.gates.privacy
    )
    report = decide(gov.policy, "credit-risk", "1", validation, evaluation, vulnerabilities=clean_scan(gov))
    assert report.passed, report.summary()
    assert report.policy_digest == gov.policy.digest
    names = {c.name for c in report.checks}
    assert {
        "roc_auc minimum",
        "gender demographic parity difference",
        "no PII in feature values",
        "dependencies scanned",
    } <= names
    require_pass(report)


def clean_scan(gov: Governance) -> VulnerabilityScan:
    sbom = json.loads((Path(__file__).parent / "osv" / "sbom.cdx.json").read_text())
    assert gov.policy.gates.vulnerabilities is not None
    return scan(sbom, gov.policy.gates.vulnerabilities, CONFIG_DIR)


def test_a_policy_with_a_vulnerability_gate_fails_without_the_scan(
    gov: Governance, evaluation_data, validation
) -> None:
    evaluation = evaluate_model(
        trained(gov, 7), evaluation_data, gov.spec, gov.spec.features, gov.policy.gates.privacy
    )
    report = decide(gov.policy, "credit-risk", "1", validation, evaluation)
    [failed] = report.failures
    assert (failed.gate, failed.value) == ("vulnerabilities", "not scanned")
    assert "the candidate's SBOM was not scanned" in report.summary()


def test_biased_model_fails_fairness_with_a_plain_reason(
    gov: Governance, evaluation_data, validation
) -> None:
    evaluation = evaluate_model(
        trained(gov, 8, label_bias=1.0),
        evaluation_data,
        gov.spec,
        gov.spec.features,
        gov.policy.gates.privacy,
    )
    report = decide(gov.policy, "credit-risk", "2", validation, evaluation)
    failed = {c.name for c in report.failures}
    assert "gender demographic parity difference" in failed
    with pytest.raises(
        PolicyGateError, match=r"demographic parity difference across gender is 0\.\d+, over the limit 0\.1"
    ):
        require_pass(report)


def test_regression_against_champion(gov: Governance, evaluation_data, validation) -> None:
    good = evaluate_model(
        trained(gov, 7), evaluation_data, gov.spec, gov.spec.features, gov.policy.gates.privacy
    )
    worse = good.model_copy(update={"metrics": {**good.metrics, "roc_auc": good.metrics["roc_auc"] - 0.05}})
    report = decide(gov.policy, "credit-risk", "3", validation, worse, champion=good, champion_version="1")
    [check] = [c for c in report.checks if c.gate == "champion"]
    assert not check.passed
    assert "beyond the allowed 0.02" in check.reason


def test_privacy_findings_for_forbidden_features_and_pii_values(gov: Governance, evaluation_data) -> None:
    frame = evaluation_data.assign(notes=evaluation_data["email"])
    findings = privacy_findings(["income", "gender", "notes"], frame, gov.policy.gates.privacy)
    kinds = {(f.kind, f.column) for f in findings}
    assert ("forbidden_feature", "gender") in kinds
    assert ("pii_value", "notes") in kinds
    assert ("pii_value", "income") not in kinds
