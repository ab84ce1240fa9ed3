"""Evidently 0.7.23 HTML reports (data drift, classification quality) that a drift check logs for
humans; the decision itself comes from ``govdeploy.monitoring.drift`` and ``.decision``.

The data drift report is built with the policy's drift share (``drift.max_drifted_share``), so its
headline ("Dataset Drift is detected" when at least that share of columns drifted) agrees with the
decision; Evidently's own default share (0.5) is never used for it.

Evidently is imported only when a report runs (the import takes seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from govdeploy.errors import DataError
from govdeploy.monitoring.drift import column_kinds

if TYPE_CHECKING:
    from evidently.core.report import Snapshot


EVIDENTLY_DRIFT_SHARE = 0.5  # Evidently's default; per-column results do not depend on it


@dataclass(frozen=True)
class DriftReport:
    """Evidently's data drift report: the HTML, its snapshot as JSON, and its headline."""

    html: str
    snapshot: dict[str, Any]
    drift_share: float  # the share of drifted columns at or above which the dataset drifts
    drifted_share: float  # the share of the report's columns that drifted
    dataset_drift: bool  # the headline: drifted_share >= drift_share


def evidently_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
    drift_share: float,
    max_rows: int = 50_000,
    seed: int = 0,
) -> DriftReport:
    """Evidently's DataDriftPreset report with the policy's ``drift_share``, on a uniform sample of at
    most max_rows per side."""
    if max_rows <= 0:
        raise DataError(f"max_rows={max_rows} must be positive; ask for at least 1 row")
    if not 0 < drift_share <= 1:
        raise DataError(f"drift_share={drift_share} must be in (0, 1]; pass the policy's max_drifted_share")
    column_kinds(reference, current, numerical, categorical, scan=True)
    sample = [_sample(frame, max_rows, seed) for frame in (reference, current)]
    snapshot = run_drift_report(sample[0], sample[1], numerical, categorical, drift_share)
    found = snapshot.dict()
    drifted = drifted_share(found)
    return DriftReport(
        html=str(snapshot.get_html_str(as_iframe=False)),
        snapshot=found,
        drift_share=drift_share,
        drifted_share=drifted,
        dataset_drift=drifted >= drift_share,
    )


def evidently_report_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
    drift_share: float,
    max_rows: int = 50_000,
    seed: int = 0,
) -> str:
    """The HTML of ``evidently_drift_report``."""
    return evidently_drift_report(
        reference,
        current,
        numerical=numerical,
        categorical=categorical,
        drift_share=drift_share,
        max_rows=max_rows,
        seed=seed,
    ).html


def drifted_share(snapshot: dict[str, Any]) -> float:
    """The share of drifted columns of a drift report's snapshot (its DriftedColumnsCount metric)."""
    for metric in snapshot["metrics"]:
        if metric["config"]["type"] == "evidently:metric_v2:DriftedColumnsCount":
            return float(metric["value"]["share"])
    raise DataError("the Evidently snapshot has no DriftedColumnsCount metric; build it with DataDriftPreset")


def evidently_performance_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    target: str,
    score: str,
    max_rows: int = 50_000,
    seed: int = 0,
) -> str:
    """Evidently's ClassificationPreset report (binary, scores as probabilities) as HTML, on samples."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    if max_rows <= 0:
        raise DataError(f"max_rows={max_rows} must be positive; ask for at least 1 row")
    definition = DataDefinition(
        classification=[BinaryClassification(target=target, prediction_probas=score)],
        numerical_columns=[score],
        categorical_columns=[target],
    )
    current_set, reference_set = (
        Dataset.from_pandas(_sample(frame[[target, score]], max_rows, seed), data_definition=definition)
        for frame in (current, reference)
    )
    snapshot = Report([ClassificationPreset()]).run(current_set, reference_set)
    return str(snapshot.get_html_str(as_iframe=False))


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index()


def run_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    drift_share: float = EVIDENTLY_DRIFT_SHARE,
) -> Snapshot:
    """Evidently's DataDriftPreset (with its tests) on the listed columns; the dataset drifts, in its
    headline and its share test, when at least ``drift_share`` of them drifted."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*numerical, *categorical]
    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    datasets = [Dataset.from_pandas(f[columns], data_definition=definition) for f in (current, reference)]
    report = Report([DataDriftPreset(columns=columns, drift_share=drift_share)], include_tests=True)
    return report.run(datasets[0], datasets[1])
