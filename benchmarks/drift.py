"""Drift benchmark: govdeploy's compute_drift against a plain Evidently DataDriftPreset report.

Builds a reference and a shifted "logged" current frame of --rows rows and 12 columns each (the
9 model features, the model's `prediction`, and the sensitive `gender` and `age_band`), times both
drift computations on them (Evidently imported beforehand, so its import is not counted), prints
the per-column tests, both times and the ratio, and exits 1 if the drifted columns differ.

    .venv/bin/python -m benchmarks.drift [--rows 1000000] [--shift 0.3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from govdeploy.catalog import load_catalog
from govdeploy.data import generate_credit_data
from govdeploy.drift import DriftResult, compute_drift
from govdeploy.evidently_reports import evidently_drift

SPEC = load_catalog(Path(__file__).resolve().parent.parent / "config" / "models.yaml").models["credit-risk"]
NUMERICAL = [*SPEC.numeric_features, "prediction"]
CATEGORICAL = [*SPEC.categorical_features, *SPEC.sensitive_attributes]  # 12 columns with the score


def logged_frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    """Credit applications with the score a model would have given them, as the gateway logs them."""
    frame = generate_credit_data(rows, seed=seed, shift=shift)
    logit = (
        -1.9
        + 6.0 * (frame["debt_to_income"] - 0.3)
        + 0.75 * frame["num_late_payments"]
        + 4.0 * (frame["loan_amount"] / frame["income"] - 0.25)
        - 0.06 * frame["credit_history_years"]
    )
    frame["prediction"] = np.round(1.0 / (1.0 + np.exp(-logit.to_numpy(dtype=float))), 4)
    return frame[NUMERICAL + CATEGORICAL]


def timed(run: Callable[[], DriftResult], repeat: int) -> tuple[DriftResult, list[float]]:
    """The result of the last of ``repeat`` runs (at least one) and the seconds each took."""
    times: list[float] = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return result, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shift", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=3, help="runs of compute_drift (median reported)")
    args = parser.parse_args()
    start = time.perf_counter()
    reference = logged_frame(args.rows, seed=1, shift=0.0)
    current = logged_frame(args.rows, seed=2, shift=args.shift)
    print(f"{args.rows:,} + {args.rows:,} rows x {len(reference.columns)} columns, shift {args.shift}")
    print(f"data built in {time.perf_counter() - start:.1f} s; load average {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    import evidently.presets  # noqa: F401  (the import is not part of the comparison)

    print(f"evidently imported in {time.perf_counter() - start:.1f} s")
    columns = {"numerical": NUMERICAL, "categorical": CATEGORICAL}
    ours, our_times = timed(lambda: compute_drift(reference, current, **columns), args.repeat)
    theirs, their_times = timed(lambda: evidently_drift(reference, current, **columns), 1)
    print(f"\n{'column':24}{'method':16}{'compute_drift':>16}{'evidently':>16}  drifted")
    for a, b in zip(ours.columns, theirs.columns, strict=True):
        method = a.method if a.method == b.method else f"{a.method}/{b.method}"
        flags = f"{'yes' if a.drifted else 'no'}/{'yes' if b.drifted else 'no'}"
        print(f"{a.column:24}{method:16}{a.score:>16.6g}{b.score:>16.6g}  {flags}")
    ours_s, theirs_s = statistics.median(our_times), their_times[0]
    print(f"\n{'':24}{'seconds':>10}{'drifted share':>16}")
    runs = ", ".join(f"{t:.2f}" for t in our_times)
    print(f"{'compute_drift':24}{ours_s:>10.2f}{ours.share:>16.3f}   (runs: {runs})")
    print(f"{'evidently DataDriftPreset':24}{theirs_s:>10.2f}{theirs.share:>16.3f}")
    print(f"speed-up (evidently / compute_drift): {theirs_s / ours_s:.1f}x")
    agree = ours.drifted_columns == theirs.drifted_columns
    print(f"drifted columns: {ours.drifted_columns} ({'same as' if agree else 'DIFFERENT from'} evidently)")
    if not agree:
        print(f"evidently drifted columns: {theirs.drifted_columns}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
