"""Evidently 0.7.23 HTML reports (data drift, classification quality) that a drift check logs for
humans; the decision itself comes from ``govdeploy.monitoring.drift``.

Evidently is imported only when a report runs (the import takes seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from govdeploy.errors import DataError
from govdeploy.monitoring.drift import column_kinds

if TYPE_CHECKING:
    from evidently.core.report import Snapshot


def evidently_report_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
    max_rows: int = 50_000,
    seed: int = 0,
) -> str:
    """Evidently's DataDriftPreset report as HTML, on a uniform sample of at most max_rows per side."""
    if max_rows <= 0:
        raise DataError(f"max_rows={max_rows} must be positive; ask for at least 1 row")
    column_kinds(reference, current, numerical, categorical, scan=True)
    sample = [_sample(frame, max_rows, seed) for frame in (reference, current)]
    return run_drift_report(sample[0], sample[1], numerical, categorical).get_html_str(as_iframe=False)


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
    reference: pd.DataFrame, current: pd.DataFrame, numerical: Sequence[str], categorical: Sequence[str]
) -> Snapshot:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*numerical, *categorical]
    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    datasets = [Dataset.from_pandas(f[columns], data_definition=definition) for f in (current, reference)]
    report = Report([DataDriftPreset(columns=columns)], include_tests=True)
    return report.run(datasets[0], datasets[1])
