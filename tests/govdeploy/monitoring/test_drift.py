from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.evidently_plain import evidently_drift
from govdeploy.config.catalog import load_catalog
from govdeploy.errors import DataError
from govdeploy.monitoring.drift import DriftResult, compute_drift
from govdeploy.monitoring.reports import evidently_report_html
from govdeploy.release.data import generate_credit_data

SPEC = load_catalog(Path(__file__).resolve().parents[3] / "config" / "models.yaml").models["credit-risk"]
NUMERICAL = SPEC.numeric_features
CATEGORICAL = SPEC.categorical_features
COLUMNS = {"numerical": NUMERICAL, "categorical": CATEGORICAL}


def both(reference: pd.DataFrame, current: pd.DataFrame, **columns: list[str]) -> DriftResult:
    """compute_drift's result, after checking it against the plain Evidently report's."""
    ours = compute_drift(reference, current, **columns)
    theirs = evidently_drift(reference, current, **columns)
    assert ours.drifted_columns == theirs.drifted_columns
    for a, b in zip(ours.columns, theirs.columns, strict=True):
        assert replace(a, score=0.0) == replace(b, score=0.0)  # column, kind, method, threshold, flag
        assert a.score == pytest.approx(b.score, rel=1e-6, abs=1e-9), a.column
    assert (ours.reference_rows, ours.current_rows) == (len(reference), len(current))
    return ours


def methods(result: DriftResult) -> dict[str, str]:
    return {c.column: c.method for c in result.columns}


def test_large_shifted_data_drifts_in_income_and_debt_as_evidently_says() -> None:
    reference, current = generate_credit_data(3000, seed=1), generate_credit_data(2500, seed=2, shift=0.3)
    result = both(reference, current, **COLUMNS)
    assert result.drifted_columns == ["income", "debt_to_income"]
    assert methods(result) == {
        **dict.fromkeys(NUMERICAL, "wasserstein"),
        "loan_term_months": "jensenshannon",  # 5 distinct values: tested as categories
        **dict.fromkeys(CATEGORICAL, "jensenshannon"),
    }
    assert {c.threshold for c in result.columns} == {0.1}
    assert result.share == pytest.approx(2 / 9)


def test_large_unshifted_data_does_not_drift() -> None:
    result = both(generate_credit_data(3000, seed=1), generate_credit_data(3000, seed=3), **COLUMNS)
    assert result.drifted_columns == []
    assert result.share == 0.0


def test_small_reference_switches_to_p_value_tests() -> None:
    result = both(generate_credit_data(600, seed=4), generate_credit_data(700, seed=5, shift=0.15), **COLUMNS)
    assert methods(result) == {
        **dict.fromkeys(NUMERICAL, "ks"),
        "loan_term_months": "chisquare",
        **dict.fromkeys(CATEGORICAL, "chisquare"),
    }
    assert {c.threshold for c in result.columns} == {0.05}
    assert "debt_to_income" in result.drifted_columns


@pytest.mark.parametrize(
    ("rows", "binary", "few_valued"),
    [(800, "z", "chisquare"), (2000, "jensenshannon", "jensenshannon")],
)
def test_binary_and_few_valued_columns(rows: int, binary: str, few_valued: str) -> None:
    reference = generate_credit_data(rows, seed=6)
    current = generate_credit_data(rows, seed=7, shift=0.2)
    for frame in (reference, current):  # a numerical column with 3 distinct values
        frame["late_band"] = np.minimum(frame["num_late_payments"], 2) * 0.5
    result = both(
        reference,
        current,
        numerical=[*NUMERICAL, "default", "late_band"],  # default: a 0/1 label
        categorical=[*CATEGORICAL, "gender"],
    )
    assert methods(result)["gender"] == methods(result)["default"] == binary
    assert methods(result)["late_band"] == few_valued


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Evidently's plots of columns holding inf
def test_nan_and_infinite_values_are_dropped_as_evidently_does() -> None:
    rng = np.random.default_rng(8)
    reference = generate_credit_data(1100, seed=8)
    current = generate_credit_data(1200, seed=9, shift=0.1)
    for frame in (reference, current):
        frame.loc[rng.random(len(frame)) < 0.1, ["income", "purpose"]] = np.nan
        frame.loc[rng.random(len(frame)) < 0.05, "debt_to_income"] = np.inf
    result = both(reference, current, **COLUMNS)
    # 1100 reference rows, ~990 without NaN: income falls back to K-S, loan_amount does not
    assert methods(result)["income"] == "ks"
    assert methods(result)["loan_amount"] == "wasserstein"


def test_to_dict_is_a_json_summary() -> None:
    reference, current = generate_credit_data(1500, seed=1), generate_credit_data(1500, seed=2, shift=0.3)
    result = compute_drift(reference, current, **COLUMNS)
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["drifted_columns"] == result.drifted_columns
    assert summary["share"] == result.share
    assert summary["columns"][0] == {
        "column": "income",
        "kind": "numerical",
        "method": "wasserstein",
        "score": result.columns[0].score,
        "threshold": 0.1,
        "drifted": True,
    }


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_credit_data(200, seed=1), generate_credit_data(200, seed=2)


@pytest.mark.parametrize(
    "run", [compute_drift, evidently_drift, partial(evidently_report_html, drift_share=0.3)]
)
def test_missing_column_names_the_column_and_the_frame(frames, run) -> None:
    reference, current = frames
    with pytest.raises(DataError, match="'region' is missing from the current frame"):
        run(reference, current.drop(columns="region"), **COLUMNS)
    with pytest.raises(DataError, match="'income' is missing from the reference frame"):
        run(reference.drop(columns="income"), current, **COLUMNS)


@pytest.mark.parametrize(
    "run", [compute_drift, evidently_drift, partial(evidently_report_html, drift_share=0.3)]
)
def test_empty_frame_and_empty_column(frames, run) -> None:
    reference, current = frames
    with pytest.raises(DataError, match="the reference frame has no rows"):
        run(reference.iloc[:0], current, **COLUMNS)
    for column, value in (("loan_amount", np.nan), ("loan_amount", np.inf), ("purpose", None)):
        with pytest.raises(DataError, match=f"'{column}' of the current frame is all NaN or ±inf"):
            run(reference, current.assign(**{column: value}), **COLUMNS)


def test_misdeclared_columns(frames) -> None:
    reference, current = frames
    with pytest.raises(DataError, match="'region' of the reference frame has dtype object"):
        compute_drift(reference, current, numerical=["income", "region"], categorical=[])
    with pytest.raises(DataError, match=r"\['income'\] are listed more than once"):
        compute_drift(reference, current, numerical=["income"], categorical=["income"])
    with pytest.raises(DataError, match="no columns to test"):
        compute_drift(reference, current, numerical=[], categorical=[])
    with pytest.raises(DataError, match="lists of column names"):
        compute_drift(reference, current, numerical="income", categorical=[])
    with pytest.raises(DataError, match="max_rows=0"):
        evidently_report_html(reference, current, **COLUMNS, drift_share=0.3, max_rows=0)


def test_html_report_is_rendered_on_a_sample() -> None:
    reference = generate_credit_data(3000, seed=1)
    current = generate_credit_data(3000, seed=2, shift=0.3)
    html = evidently_report_html(reference, current, **COLUMNS, drift_share=0.3, max_rows=500)
    assert html.lstrip().lower().startswith(("<html", "<!doctype html"))
    assert "debt_to_income" in html


def test_importing_the_module_does_not_import_evidently() -> None:
    code = "import sys, govdeploy.monitoring.drift, govdeploy.monitoring.reports; sys.exit('evidently' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
