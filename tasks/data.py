"""Data tasks: load or generate a dataset, validate it against its suite."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from govdeploy.config.suites import Suite
from govdeploy.release.data import generate_credit_data, load_dataset
from govdeploy.release.validation import ValidationReport, validate_frame
from tasks.artifacts import publish_validation


@task(cache_policy=NO_CACHE)
def load_data(
    data_path: str | None, rows: int, seed: int, label_bias: float = 0.0, shift: float = 0.0
) -> pd.DataFrame:
    """Read ``data_path``, or generate synthetic credit-risk data when it is None."""
    if data_path:
        frame = load_dataset(Path(data_path))
        source = data_path
    else:
        frame = generate_credit_data(rows, seed=seed, label_bias=label_bias, shift=shift)
        source = f"synthetic(rows={rows}, seed={seed}, label_bias={label_bias}, shift={shift})"
    get_run_logger().info("loaded %d rows x %d columns from %s", len(frame), frame.shape[1], source)
    return frame


@task(cache_policy=NO_CACHE)
def validate_data(
    frame: pd.DataFrame, suite: Suite, min_rows: int, model: str, purpose: str
) -> ValidationReport:
    """Run the expectation suite and show its results in the UI."""
    report = validate_frame(frame, suite, min_rows)
    publish_validation(report, model, purpose)
    logger = get_run_logger()
    if report.passed:
        logger.info(
            "data validation passed: %d/%d expectations on %d rows",
            report.evaluated,
            report.declared,
            report.rows,
        )
    else:
        logger.error("data validation failed: %s", "; ".join(report.problems))
    return report
