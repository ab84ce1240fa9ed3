"""Drift benchmark: govdeploy's compute_drift against a plain Evidently DataDriftPreset report.

Builds a reference and a shifted "logged" current frame of --rows rows and 12 columns each (the
9 model features, the model's `prediction`, and the sensitive `gender` and `age_band`), times both
drift computations on them (Evidently imported beforehand, so its import is not counted), prints
the per-column tests, both times and the ratio, and exits 1 if the drifted columns differ.

Then the whole decision as the drift flow takes it: the current rows are written as the gateway
writes them (one record per request, encrypted batches of 500 by ``IOLogWriter``), and the time
from the sealed batches to the decision is measured: the window read (decrypt, parse, columns),
compute_drift on the 10 columns the flow checks (the gateway never logs sensitive attributes) and
the policy's decision. The batches are read from a local directory; the flow reads the same bytes
from the bucket, so S3 transfer time comes on top. ``--no-log`` skips this part.

    .venv/bin/python -m benchmarks.drift [--rows 1000000] [--shift 0.3] [--repeat 3] [--no-log]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.evidently_plain import evidently_drift
from govdeploy.config.catalog import load_catalog
from govdeploy.config.policy import load_policy
from govdeploy.monitoring.decision import decide
from govdeploy.monitoring.drift import DriftResult, compute_drift
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.monitoring.iorecords import IORecord, batch_files
from govdeploy.monitoring.window_columns import read_window
from govdeploy.monitoring.window_source import directory_source
from govdeploy.release.data import generate_credit_data

MODEL = "credit-risk"
KEY = bytes(range(32))  # the benchmark's own master key; its batches live in a temporary directory
CONFIG = Path(__file__).resolve().parent.parent / "config"
SPEC = load_catalog(CONFIG / "models.yaml").models[MODEL]
POLICY = load_policy(CONFIG / "policy.yaml")
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


def write_log(frame: pd.DataFrame, directory: Path, version: str) -> int:
    """The rows as the gateway logs them: one predict record per request, sealed batches of 500."""
    writer = IOLogWriter(directory, KEY, batch_size=500)
    inputs = frame[SPEC.features].to_dict("records")
    scores = frame["prediction"].tolist()
    now = datetime.now(UTC)
    for row, score in zip(inputs, scores, strict=True):
        writer.submit(
            IORecord.model_construct(
                id=uuid.uuid4().hex,
                time=now.isoformat(),
                kind="predict",
                model=MODEL,
                version=version,
                principal="bench",
                route=f"POST /v1/models/{MODEL}/predict",
                status=200,
                latency_ms=1.0,
                inputs=[row],
                outputs=[score],
                error=None,
                labels=None,
            )
        )
    writer.close()
    return writer.written


def decision_from_log(reference: pd.DataFrame, current: pd.DataFrame, repeat: int) -> list[str]:
    """Time the drift flow's path from sealed I/O batches to the decision; its drifted columns."""
    numerical, categorical = [*SPEC.numeric_features, "prediction"], SPEC.categorical_features
    columns = [*numerical, *categorical]
    with tempfile.TemporaryDirectory(prefix="govdeploy-bench-iolog-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        written = write_log(current, root, version="1")
        keys = [path.relative_to(root).as_posix() for path in batch_files(root)]
        size = sum(path.stat().st_size for path in batch_files(root)) / 1e6
        print(
            f"\n{written:,} records written as {len(keys)} sealed batches ({size:.0f} MB) in "
            f"{time.perf_counter() - start:.1f} s"
        )
        begin, end = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
        reads, computes, totals = [], [], []
        for _ in range(max(repeat, 1)):
            start = time.perf_counter()
            window = read_window(directory_source(root), keys, KEY, SPEC, MODEL, "1", begin, end)
            read = time.perf_counter()
            drift = compute_drift(
                reference[columns], window.rows[columns], numerical=numerical, categorical=categorical
            )
            decision = decide(POLICY.drift, drift, None)
            done = time.perf_counter()
            reads.append(read - start)
            computes.append(done - read)
            totals.append(done - start)
    read_s, compute_s = statistics.median(reads), statistics.median(computes)
    print(f"{'window read (decrypt, parse, columns)':40}{read_s:8.2f} s  {len(window.rows):,} rows")
    print(f"{'compute_drift and the decision':40}{compute_s:8.2f} s  {len(columns)} columns")
    total = statistics.median(totals)
    verdict = "within" if total <= 15 else "OVER"
    print(
        f"decision from the sealed log: {total:.2f} s ({verdict} the 15 s target); "
        f"runs: {', '.join(f'{t:.2f}' for t in totals)}"
    )
    print(f"decision: {decision.action}: {'; '.join(decision.reasons)}")
    return list(drift.drifted_columns)


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
    parser.add_argument("--no-log", action="store_true", help="skip the decision from sealed I/O batches")
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
    if not args.no_log:
        from_log = decision_from_log(reference, current, args.repeat)
        expected = [c for c in ours.drifted_columns if c in [*SPEC.features, "prediction"]]
        if from_log != expected:
            print(f"the log's drifted columns {from_log} differ from the frame's {expected}", file=sys.stderr)
            raise SystemExit(1)


if __name__ == "__main__":
    main()
