"""Evidently's own DataDriftPreset run, read back as a ``DriftResult``: what govdeploy's
``compute_drift`` is compared with, by the drift benchmark and the drift tests. Not product code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from govdeploy.monitoring.drift import ColumnDrift, DriftResult, Kind, column_kinds
from govdeploy.monitoring.reports import run_drift_report

METHODS = {  # Evidently's display name of each default test, to ours
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
}


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
) -> DriftResult:
    """Run Evidently's DataDriftPreset on the listed columns; a drifted column is a failed test."""
    kinds = column_kinds(reference, current, numerical, categorical, scan=True)
    found = _value_drifts(run_drift_report(reference, current, numerical, categorical).dict(), kinds)
    return DriftResult(tuple(found[name] for name in kinds), len(reference), len(current))


def _value_drifts(snapshot: dict[str, Any], kinds: dict[str, Kind]) -> dict[str, ColumnDrift]:
    """The ValueDrift results of an Evidently snapshot: the score, and the test's status as the flag."""
    scores = {metric["id"]: metric["value"] for metric in snapshot["metrics"]}
    found: dict[str, ColumnDrift] = {}
    for test in snapshot["tests"]:
        params = test["metric_config"]["params"]
        if params["type"] == "evidently:metric_v2:ValueDrift":
            found[params["column"]] = ColumnDrift(
                column=params["column"],
                kind=kinds[params["column"]],
                method=METHODS.get(params["method"], params["method"]),
                score=float(scores[test["metric_config"]["metric_id"]]),
                threshold=float(params["threshold"]),
                drifted=test["status"] == "FAIL",
            )
    return found
