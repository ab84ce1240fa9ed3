from __future__ import annotations

from govdeploy.release.gate import Check, GateReport
from tasks.artifacts import artifact_key, gate_markdown


def test_artifact_keys_are_lowercase_with_dashes() -> None:
    assert artifact_key("gate", "Credit_Risk", "v12") == "gate-credit-risk-v12"


def test_gate_markdown_shows_each_check_and_why_it_failed() -> None:
    report = GateReport(
        model="credit-risk",
        version="3",
        policy_digest="ab" * 32,
        checks=[
            Check(
                gate="performance",
                name="roc_auc minimum",
                value="0.8100",
                threshold=">= 0.75",
                passed=True,
                reason="roc_auc is 0.8100, at or above the minimum 0.75",
            ),
            Check(
                gate="fairness",
                name="gender demographic parity difference",
                value="0.1721",
                threshold="<= 0.1",
                passed=False,
                reason="demographic parity difference across gender is 0.1721",
            ),
        ],
    )
    text = gate_markdown(report, "http://127.0.0.1:5050/#/experiments/1/runs/abc")
    assert "credit-risk v3 — ❌ failed" in text
    assert f"`{'ab' * 32}`" in text
    assert "| fairness | gender demographic parity difference | 0.1721 | <= 0.1 | **FAIL** |" in text
    assert "- demographic parity difference across gender is 0.1721" in text
    assert "(http://127.0.0.1:5050/#/experiments/1/runs/abc)" in text
