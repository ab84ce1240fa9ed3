"""Expectation suites, JSON files in ``config/expectations/``, loaded into typed models.

A suite file is ``{"name": ..., "meta": {...}, "expectations": [{"type": ..., "kwargs": {...}}]}``.
Loading refuses what Great Expectations would silently drop or mis-run: an unknown expectation
type, kwargs that the expectation does not accept. Running a suite is ``govdeploy.release.validation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from govdeploy.config.files import StrictModel, file_digest, load_json, parse_model
from govdeploy.errors import ConfigError

# Expectations that break ValidationDefinition.run in GX 1.24 (it raises a JSON error).
UNSUPPORTED_TYPES = frozenset({"expect_column_quantile_values_to_be_between"})


class ExpectationSpec(StrictModel):
    type: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)


class SuiteSpec(StrictModel):
    """An expectation suite file, validated and with its digest."""

    name: str = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)
    expectations: list[ExpectationSpec] = Field(min_length=1)


class Suite(BaseModel):
    spec: SuiteSpec
    path: str
    digest: str


def suite_path(expectations_dir: Path, name: str) -> Path:
    return expectations_dir / f"{name}.json"


def load_suite(path: Path) -> Suite:
    """Load a suite file; raise ConfigError naming the file, the expectation and the fix."""
    spec = parse_model(SuiteSpec, load_json(path, "expectation suite"), path, "expectation suite")
    for index, expectation in enumerate(spec.expectations):
        build_expectation(expectation, f"{path} expectations[{index}]")
    return Suite(spec=spec, path=str(path), digest=file_digest(path))


def build_expectation(spec: ExpectationSpec, where: str) -> Any:
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    if spec.type in UNSUPPORTED_TYPES:
        raise ConfigError(f"{where}: expectation type {spec.type!r} is not supported; remove it")
    try:
        get_expectation_impl(spec.type)
    except Exception:
        raise ConfigError(
            f"{where}: unknown expectation type {spec.type!r}; use a Great Expectations core "
            "type such as 'expect_column_values_to_not_be_null'"
        ) from None
    try:
        return ExpectationConfiguration(type=spec.type, kwargs=spec.kwargs).to_domain_obj()
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{where}: invalid kwargs {sorted(spec.kwargs)} for {spec.type!r}: {reason}"
        ) from None
