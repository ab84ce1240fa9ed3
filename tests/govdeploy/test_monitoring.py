"""Drift monitoring units: window bounds, the I/O window and its ground truth, the policy decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from govdeploy.catalog import ModelSpec, load_catalog
from govdeploy.data import generate_credit_data
from govdeploy.drift import ColumnDrift, DriftResult
from govdeploy.errors import DataError
from govdeploy.gateway.iolog import IORecord
from govdeploy.monitoring import (
    Performance,
    build_window,
    decide,
    estimate_shift,
    performance,
    require_rows,
    window_bounds,
)
from govdeploy.policy import DriftPolicy
from govdeploy.reference import build_profile, build_reference, read_reference, write_reference
from govdeploy.training import build_pipeline, fit

CONFIG = Path(__file__).resolve().parents[2] / "config"
T0 = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return load_catalog(CONFIG / "models.yaml").models["credit-risk"]


def record(spec: ModelSpec, rid: str, minutes: int, version: str = "3", **kw: object) -> IORecord:
    row = generate_credit_data(1, seed=minutes)[spec.features].iloc[0].to_dict()
    fields: dict[str, object] = {
        "id": rid,
        "time": (T0 + timedelta(minutes=minutes)).isoformat(),
        "kind": "predict",
        "model": "credit-risk",
        "version": version,
        "principal": "bench",
        "route": "POST /v1/models/credit-risk/predict",
        "status": 200,
        "latency_ms": 1.0,
        "inputs": [{**row, "email": "tok_x"}],
        "outputs": [0.25],
    }
    return IORecord.model_validate({**fields, **kw})


def test_window_bounds_default_to_the_last_hours_and_refuse_bad_times() -> None:
    start, end = window_bounds(24, "2026-11-22T02:00:00+00:00")
    assert end - start == timedelta(hours=24) and end.tzinfo is not None
    start, _ = window_bounds(24, "2026-11-22T02:00:00", "2026-11-22T01:00:00")
    assert start == T0
    with pytest.raises(DataError, match="end='yesterday' is not an ISO 8601 time"):
        window_bounds(24, "yesterday")
    with pytest.raises(DataError, match="is not before its end"):
        window_bounds(24, "2026-11-22T01:00:00+00:00", "2026-11-22T02:00:00+00:00")


def test_window_keeps_the_versions_answers_in_time_and_joins_labels(spec: ModelSpec) -> None:
    records = [
        record(spec, "a" * 32, 1),
        record(spec, "b" * 32, 2, version="2"),  # another version answered: not this window's rows
        record(spec, "c" * 32, 3, status=422, outputs=None),  # refused: no prediction
        record(spec, "d" * 32, 90),  # after the window's end
        record(spec, "e" * 32, 4),
        record(
            spec,
            "f" * 32,
            100,
            kind="feedback",
            version=None,
            inputs=None,
            outputs=None,
            labels=[{"request_id": "a" * 32, "label": 1}],
        ),
    ]
    window = build_window(records, spec, "credit-risk", "3", T0, T0 + timedelta(hours=1))
    assert list(window.rows["request_id"]) == ["a" * 32, "e" * 32]
    assert window.other_versions == 1 and window.labels == {"a" * 32: 1}
    assert "email" not in window.rows.columns
    labelled = window.labelled(spec.label)
    assert list(labelled["request_id"]) == ["a" * 32] and list(labelled[spec.label]) == [1]
    with pytest.raises(DataError, match=r"has 2 predictions of credit-risk v3, fewer than the 500"):
        require_rows(window, 500)


def test_a_malformed_record_fails_the_window(spec: ModelSpec) -> None:
    broken = record(spec, "a" * 32, 1, inputs=[{"income": 1.0}])
    with pytest.raises(DataError, match=r"lacks features \['loan_amount'.*malformed"):
        build_window([broken], spec, "credit-risk", "3", T0, T0 + timedelta(hours=1))
    uneven = record(spec, "b" * 32, 1, outputs=[0.1, 0.2])
    with pytest.raises(DataError, match="1 input rows but 2 predictions"):
        build_window([uneven], spec, "credit-risk", "3", T0, T0 + timedelta(hours=1))


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
