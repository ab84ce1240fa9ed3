"""Drift monitoring units: performance on the ground truth, the policy decision, the shift estimate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from govdeploy.config.catalog import ModelSpec, load_catalog
from govdeploy.config.policy import DriftPolicy
from govdeploy.errors import DataError
from govdeploy.monitoring.decision import Performance, decide, estimate_shift, performance
from govdeploy.monitoring.drift import ColumnDrift, DriftResult
from govdeploy.release.data import generate_credit_data
from govdeploy.release.reference import build_profile, build_reference, read_reference, write_reference
from govdeploy.release.training import build_pipeline, fit

CONFIG = Path(__file__).resolve().parents[3] / "config"


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return load_catalog(CONFIG / "models.yaml").models["credit-risk"]


def drift_of(*drifted: str, total: int = 10) -> DriftResult:
    columns = [
        ColumnDrift(
            f"c{i}" if i >= len(drifted) else drifted[i],
            "numerical",
            "wasserstein",
            0.0,
            0.1,
            i < len(drifted),
        )
        for i in range(total)
    ]
    return DriftResult(tuple(columns), 2000, 600)


def perf(drop: float) -> Performance:
    return Performance(labelled_rows=600, reference_roc_auc=0.8, current_roc_auc=0.8 - drop, current={})


@pytest.mark.parametrize(
    ("drift", "measured", "action"),
    [
        (drift_of("income"), None, "record"),
        (drift_of("income", "debt_to_income", "prediction"), None, "retrain"),
        (drift_of("income", "debt_to_income", "prediction"), perf(0.01), "retrain"),
        (drift_of("income"), perf(0.2), "rollback_and_retrain"),
        (drift_of(), perf(0.04), "record"),
    ],
)
def test_decision_table(drift: DriftResult, measured: Performance | None, action: str) -> None:
    decision = decide(DriftPolicy(max_drifted_share=0.3, max_performance_drop=0.05), drift, measured)
    assert decision.action == action, decision.reasons
    assert decision.reasons


def test_performance_needs_enough_labels_of_both_classes(spec: ModelSpec) -> None:
    frame = generate_credit_data(1500, seed=3)
    model = build_pipeline(spec).fit(frame[spec.features], frame[spec.label])
    reference = build_reference(spec, model, frame)
    current = build_reference(spec, model, generate_credit_data(400, seed=4))
    assert performance(reference, current, spec.label, 500) is None
    assert performance(reference, current.assign(default=1), spec.label, 100) is None
    same = performance(reference, current, spec.label, 200)
    assert same is not None and abs(same.drop) < 0.05
    flipped = performance(reference, current.assign(default=1 - current[spec.label]), spec.label, 200)
    assert flipped is not None and flipped.drop > 0.4


def test_reference_round_trip_profile_and_shift_estimate(spec: ModelSpec, tmp_path: Path) -> None:
    frame = generate_credit_data(1200, seed=5)
    model = build_pipeline(spec).fit(frame[spec.features], frame[spec.label])
    reference = build_reference(spec, model, frame)
    assert not {"email", "phone", "gender", "applicant_id"} & set(reference.columns)
    write_reference(tmp_path, spec, reference)
    pd.testing.assert_frame_equal(read_reference(tmp_path, spec), reference)
    profile = build_profile(spec, reference)
    assert profile["categorical"]["purpose"] == ["business", "car", "education", "home", "personal"]
    assert profile["numeric"]["income"]["min"] == frame["income"].min()
    shifted = generate_credit_data(1200, seed=6, shift=0.4)
    assert abs(estimate_shift(reference, shifted) - 0.4) < 0.05
    with pytest.raises(DataError, match=r"reference\.parquet is not among the signed artifacts"):
        read_reference(tmp_path / "elsewhere", spec)


def test_a_positive_weight_keeps_the_ranking_and_raises_the_scores(spec: ModelSpec) -> None:
    frame = generate_credit_data(3000, seed=8)
    plain, _ = fit(spec, frame[:2400], frame[2400:])
    weighted, _ = fit(spec, frame[:2400], frame[2400:], positive_weight=3.0)
    rows = frame[2400:][spec.features]
    before, after = plain.predict_proba(rows)[:, 1], weighted.predict_proba(rows)[:, 1]
    assert after.mean() - before.mean() > 0.1
    assert pd.Series(before).corr(pd.Series(after), method="spearman") > 0.99
    with pytest.raises(DataError, match=r"positive_weight=0\.0 must be positive"):
        fit(spec, frame[:2400], frame[2400:], positive_weight=0.0)
