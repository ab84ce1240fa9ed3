"""Data drift between a reference and a current frame, decided as Evidently's DataDriftPreset does.

``compute_drift`` reproduces the default per-column test and threshold of Evidently 0.7.23
(``evidently/legacy/calculations/stattests/registry.py``, ``_get_default_stattest``) on numpy
arrays, reading each column once. NaN and ±inf are dropped first; rows and distinct values are
counted on what is left, distinct values over reference and current together:

    reference rows   column                              test                         drift when
    ≤ 1000           numerical, > 5 distinct values      Kolmogorov-Smirnov p-value   p ≤ 0.05
    ≤ 1000           any other, > 2 distinct values      chi-square p-value           p < 0.05
    ≤ 1000           any other, ≤ 2 distinct values      two-proportion Z-test p      p < 0.05
    > 1000           numerical, > 5 distinct values      Wasserstein / reference std  d ≥ 0.1
    > 1000           any other                           Jensen-Shannon distance      d ≥ 0.1

``govdeploy.monitoring.reports`` renders Evidently's HTML reports for humans;
``benchmarks/evidently_plain.py`` runs Evidently's own preset to compare with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from govdeploy.errors import DataError

Kind = Literal["numerical", "categorical"]

P_VALUE = 0.05  # threshold of the p-value tests
DISTANCE = 0.1  # threshold of the distance tests
SMALL_REFERENCE = 1000  # at or below this many reference rows, the p-value tests are used
FEW_VALUES = 5  # a numerical column with at most this many distinct values is tested as categories


@dataclass(frozen=True)
class ColumnDrift:
    """The drift test of one column: its score, the threshold, and whether it drifted."""

    column: str
    kind: Kind
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift of a current frame against a reference frame."""

    columns: tuple[ColumnDrift, ...]
    reference_rows: int
    current_rows: int

    @property
    def share(self) -> float:
        return len(self.drifted_columns) / len(self.columns)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "share": self.share,
            "drifted_columns": self.drifted_columns,
            "columns": [asdict(c) for c in self.columns],
        }


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
) -> DriftResult:
    """Test every listed column for drift with Evidently's default test and threshold."""
    kinds = column_kinds(reference, current, numerical, categorical)
    columns = tuple(_column_drift(name, kind, reference[name], current[name]) for name, kind in kinds.items())
    return DriftResult(columns, len(reference), len(current))


def column_kinds(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    scan: bool = False,
) -> dict[str, Kind]:
    """Check both frames hold every listed column (with values, if scan); map each to its kind."""
    kinds = _listed(numerical, categorical)
    for side, frame in (("reference", reference), ("current", current)):
        if len(frame) == 0:
            raise DataError(f"the {side} frame has no rows; drift needs data on both sides")
        for name, kind in kinds.items():
            _check_column(frame.get(name), name, kind, side, scan)
    return kinds


def _listed(numerical: Sequence[str], categorical: Sequence[str]) -> dict[str, Kind]:
    if isinstance(numerical, str) or isinstance(categorical, str):
        raise DataError("numerical= and categorical= take lists of column names; wrap a single name")
    listed: list[tuple[str, Kind]] = [(n, "numerical") for n in numerical]
    listed += [(n, "categorical") for n in categorical]
    twice = sorted(name for name, times in Counter(n for n, _ in listed).items() if times > 1)
    if twice:
        raise DataError(f"columns {twice} are listed more than once; list each once, in one kind")
    if not listed:
        raise DataError("no columns to test for drift; pass numerical= and/or categorical= column names")
    return dict(listed)


def _check_column(series: pd.Series | None, name: str, kind: Kind, side: str, scan: bool) -> None:
    if series is None:
        raise DataError(f"column {name!r} is missing from the {side} frame; add it or stop listing it")
    if kind == "numerical" and not pd.api.types.is_numeric_dtype(series):
        raise DataError(
            f"numerical column {name!r} of the {side} frame has dtype {series.dtype}; "
            "cast it to numbers or list it as categorical"
        )
    if scan and series.replace([np.inf, -np.inf], np.nan).count() == 0:
        raise _no_values(name, side)


def _no_values(name: str, side: str) -> DataError:
    return DataError(f"column {name!r} of the {side} frame is all NaN or ±inf; fill it or stop listing it")


def _column_drift(name: str, kind: Kind, reference: pd.Series, current: pd.Series) -> ColumnDrift:
    if kind == "categorical":
        counts = _value_counts(reference, name, "reference"), _value_counts(current, name, "current")
        return _as_categories(name, kind, *counts)
    return _numerical(name, _finite(reference, name, "reference"), _finite(current, name, "current"))


def _finite(series: pd.Series, name: str, side: str) -> np.ndarray:
    """The finite values of a numerical column, sorted, in a new float64 array."""
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise _no_values(name, side)
    values.sort()
    return values


def _value_counts(series: pd.Series, name: str, side: str) -> pd.Series:
    """How often each value of a column occurs, leaving out NaN, ±inf and unused categories."""
    counts = series.value_counts(sort=False)
    counts = counts[(counts > 0) & ~counts.index.isin([np.inf, -np.inf])]
    if counts.empty:
        raise _no_values(name, side)
    return counts


def _numerical(name: str, reference: np.ndarray, current: np.ndarray) -> ColumnDrift:
    """Test a numerical column, given its sorted finite values on each side."""
    both = np.concatenate((reference, current))
    order = np.argsort(both, kind="stable")  # merges the two sorted runs
    steps = np.diff(both[order])
    breaks = np.flatnonzero(steps)  # the last position of each distinct value, but the largest
    if breaks.size + 1 <= FEW_VALUES:
        return _as_categories(name, "numerical", _sorted_counts(reference), _sorted_counts(current))
    if reference.size <= SMALL_REFERENCE:
        p_value = float(stats.ks_2samp(reference, current).pvalue)
        return ColumnDrift(name, "numerical", "ks", p_value, P_VALUE, p_value <= P_VALUE)
    # Wasserstein-1 = the area between the two empirical CDFs, which only step at the breaks
    from_reference = np.cumsum(order < reference.size)[breaks]
    reference_cdf = from_reference / reference.size
    current_cdf = (breaks + 1 - from_reference) / current.size
    wasserstein = float(np.dot(np.abs(reference_cdf - current_cdf), steps[breaks]))
    score = wasserstein / max(float(np.std(reference)), 0.001)
    return ColumnDrift(name, "numerical", "wasserstein", score, DISTANCE, score >= DISTANCE)


def _sorted_counts(values: np.ndarray) -> pd.Series:
    distinct, counts = np.unique(values, return_counts=True)
    return pd.Series(counts, index=distinct)


def _as_categories(name: str, kind: Kind, reference: pd.Series, current: pd.Series) -> ColumnDrift:
    """Test a categorical (or few-valued numerical) column, given its value counts on each side."""
    reference, current = reference.align(current, join="outer", fill_value=0)
    ref, cur = reference.to_numpy(dtype=np.float64), current.to_numpy(dtype=np.float64)
    n_ref, n_cur = ref.sum(), cur.sum()
    if n_ref > SMALL_REFERENCE:
        score = float(distance.jensenshannon(ref / n_ref, cur / n_cur))
        return ColumnDrift(name, kind, "jensenshannon", score, DISTANCE, score >= DISTANCE)
    if ref.size > 2:
        with np.errstate(divide="ignore", invalid="ignore"):  # a value new in current: p = 0
            p_value = float(stats.chisquare(cur, ref * (n_cur / n_ref)).pvalue)
        return ColumnDrift(name, kind, "chisquare", p_value, P_VALUE, p_value < P_VALUE)
    p_value = _z_test(ref, cur)
    return ColumnDrift(name, kind, "z", p_value, P_VALUE, p_value < P_VALUE)


def _z_test(ref: np.ndarray, cur: np.ndarray) -> float:
    """Two-sided p-value of the two-proportion Z-test, given the counts of (at most) two values."""
    if ref.size == 1:
        return 1.0
    n_ref, n_cur = ref.sum(), cur.sum()
    p_ref, p_cur = ref[1] / n_ref, cur[1] / n_cur
    pooled = (p_ref * n_ref + p_cur * n_cur) / (n_ref + n_cur)
    z = (p_ref - p_cur) / np.sqrt(pooled * (1 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))
