"""The Evidently data drift report is built with the policy's drift share, so its headline agrees
with the drift decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from govdeploy.config.catalog import load_catalog
from govdeploy.config.policy import DriftPolicy
from govdeploy.errors import DataError
from govdeploy.monitoring.decision import decide
from govdeploy.monitoring.drift import compute_drift
from govdeploy.monitoring.reports import evidently_drift_report, evidently_report_html
from govdeploy.release.data import generate_credit_data
from govdeploy.release.reference import PREDICTION

SPEC = load_catalog(Path(__file__).resolve().parents[3] / "config" / "models.yaml").models["credit-risk"]
NUMERICAL = [*SPEC.numeric_features, PREDICTION]
CATEGORICAL = SPEC.categorical_features
COLUMNS = {"numerical": NUMERICAL, "categorical": CATEGORICAL}
DRIFTED = ["loan_amount", "credit_history_years", PREDICTION]


def scored(rows: int, seed: int, drift: bool) -> pd.DataFrame:
    """Credit data with a score; with ``drift``, 3 of the 10 tested columns shift."""
    frame = generate_credit_data(rows, seed=seed)
    rng = np.random.default_rng(seed)
    frame[PREDICTION] = rng.beta(5, 2, size=rows) if drift else rng.beta(2, 5, size=rows)
    if drift:
        frame["loan_amount"] = frame["loan_amount"] * 1.6
        frame["credit_history_years"] = frame["credit_history_years"] + 5
    return frame[[*NUMERICAL, *CATEGORICAL]]


@pytest.fixture(scope="module")
def window() -> tuple[pd.DataFrame, pd.DataFrame]:
    return scored(2000, seed=1, drift=False), scored(2000, seed=2, drift=True)


def test_three_of_ten_columns_at_share_0_3_is_retrain_and_the_report_says_drift(window) -> None:
    reference, current = window
    drift = compute_drift(reference, current, **COLUMNS)
    assert drift.drifted_columns == DRIFTED and len(drift.columns) == 10
    decision = decide(DriftPolicy(max_drifted_share=0.3), drift, None)
    assert decision.action == "retrain"
    assert (decision.data_drift, decision.max_drifted_share) == (True, 0.3)

    report = evidently_drift_report(reference, current, **COLUMNS, drift_share=decision.max_drifted_share)
    assert (report.dataset_drift, report.drifted_share, report.drift_share) == (True, 0.3, 0.3)
    assert "Dataset Drift is detected. Dataset drift detection threshold is 0.3" in report.html
    assert "NOT detected" not in report.html
    share_tests = [t for t in report.snapshot["tests"] if t["name"].startswith("Share of Drifted Columns")]
    assert [(t["name"], t["status"]) for t in share_tests] == [
        ("Share of Drifted Columns: Less 0.300", "FAIL")
    ]


def test_evidentlys_default_share_would_contradict_the_decision(window) -> None:
    """What a report at Evidently's own default share (0.5) said: the headline the decision overrides."""
    html = evidently_report_html(*window, **COLUMNS, drift_share=0.5)
    assert "Dataset Drift is NOT detected. Dataset drift detection threshold is 0.5" in html


def test_under_the_share_neither_decision_nor_report_detects_drift(window) -> None:
    reference, current = window
    decision = decide(DriftPolicy(max_drifted_share=0.4), compute_drift(reference, current, **COLUMNS), None)
    assert (decision.action, decision.data_drift) == ("record", False)
    report = evidently_drift_report(reference, current, **COLUMNS, drift_share=0.4)
    assert report.dataset_drift is False
    assert "Dataset Drift is NOT detected. Dataset drift detection threshold is 0.4" in report.html


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_drift_share_outside_0_to_1_is_refused(window, share: float) -> None:
    with pytest.raises(DataError, match=rf"drift_share={share} must be in \(0, 1\]"):
        evidently_drift_report(*window, **COLUMNS, drift_share=share)
