"""The drift check's Evidently report uses the drift share its decision was taken with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from govdeploy.config.policy import DriftPolicy
from govdeploy.monitoring.decision import decide
from govdeploy.monitoring.drift import compute_drift
from govdeploy.monitoring.window import Window
from tasks.drift import drift_reports, drift_summary
from tests.govdeploy.monitoring.test_drift_share import COLUMNS, SPEC, scored


def test_a_retrain_decision_is_logged_with_a_report_that_detects_dataset_drift() -> None:
    reference, rows = scored(2000, seed=1, drift=False), scored(2000, seed=2, drift=True)
    end = datetime.now(UTC)
    window = Window("credit-risk", "3", end - timedelta(hours=24), end, rows.assign(request_id="r"))
    drift = compute_drift(reference, rows, **COLUMNS)
    decision = decide(DriftPolicy(max_drifted_share=0.3), drift, None)
    summary = drift_summary(window, drift, decision, 0.0)
    assert (summary["decision"]["action"], summary["decision"]["max_drifted_share"]) == ("retrain", 0.3)

    reports, headline = drift_reports(reference, window, summary, SPEC)
    assert headline == {"dataset_drift": True, "drift_share": 0.3, "drifted_share": 0.3}
    assert set(reports) == {"report.html"}  # no labels yet: no classification report
    assert "Dataset Drift is detected. Dataset drift detection threshold is 0.3" in reports["report.html"]
