"""Data validation with Great Expectations against a suite of ``config/expectations/``.

Validation refuses an empty batch, a batch below the policy's row minimum, and a run in which
fewer expectations ran than were declared (the suite itself is loaded by ``govdeploy.config.suites``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd
from pydantic import BaseModel

from govdeploy.config.suites import Suite, build_expectation
from govdeploy.errors import ValidationGateError


class ExpectationResult(BaseModel):
    type: str
    column: str | None
    success: bool
    detail: str


class ValidationReport(BaseModel):
    """What a validation run found; ``passed`` is the gate's verdict."""

    suite: str
    suite_digest: str
    rows: int
    declared: int
    evaluated: int
    results: list[ExpectationResult]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def failed(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success]


def validate_frame(frame: pd.DataFrame, suite: Suite, min_rows: int) -> ValidationReport:
    """Run a suite on a dataframe; every problem found is in ``report.problems``."""
    declared = len(suite.spec.expectations)
    problems: list[str] = []
    if len(frame) < min_rows:
        problems.append(
            f"the batch has {len(frame)} rows, fewer than the {min_rows} the policy requires"
            + (" (it is empty)" if frame.empty else "")
        )
    results = _run_suite(frame, suite) if not frame.empty else []
    if len(results) < declared:
        problems.append(f"only {len(results)} of {declared} declared expectations ran")
    failed = [r for r in results if not r.success]
    if failed:
        shown = ", ".join(f"{r.type}({r.column}): {r.detail}" for r in failed[:5])
        problems.append(f"{len(failed)} of {declared} expectations failed: {shown}")
    return ValidationReport(
        suite=suite.spec.name,
        suite_digest=suite.digest,
        rows=len(frame),
        declared=declared,
        evaluated=len(results),
        results=results,
        problems=problems,
    )


def require_valid(report: ValidationReport) -> None:
    """Raise ValidationGateError with a plain reason when the report did not pass."""
    if not report.passed:
        raise ValidationGateError(
            f"data validation failed against suite {report.suite!r}: " + "; ".join(report.problems)
        )


def _run_suite(frame: pd.DataFrame, suite: Suite) -> list[ExpectationResult]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("govdeploy")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
    )
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.spec.name))
    for index, spec in enumerate(suite.spec.expectations):
        gx_suite.add_expectation(build_expectation(spec, f"{suite.path} expectations[{index}]"))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite.spec.name}-validation", data=batch, suite=gx_suite)
    )
    outcome = definition.run(batch_parameters={"dataframe": frame})
    return [_result(r) for r in outcome.results]


def _result(result: Any) -> ExpectationResult:
    config = result.expectation_config
    column = config.kwargs.get("column")
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return ExpectationResult(
            type=config.type,
            column=column,
            success=False,
            detail=f"error: {info.get('exception_message')}",
        )
    observed = result.result or {}
    if "unexpected_count" in observed:
        detail = f"{observed['unexpected_count']} unexpected of {observed.get('element_count')}"
    else:
        detail = f"observed {observed.get('observed_value')!r}"
    return ExpectationResult(type=config.type, column=column, success=bool(result.success), detail=detail)
