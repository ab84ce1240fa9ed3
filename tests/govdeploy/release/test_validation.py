from __future__ import annotations

import json
from pathlib import Path

import pytest

from govdeploy.config.suites import load_suite
from govdeploy.errors import ConfigError, ValidationGateError
from govdeploy.release.data import generate_credit_data
from govdeploy.release.validation import require_valid, validate_frame
from tests.conftest import CONFIG_DIR

SUITE_PATH = CONFIG_DIR / "expectations" / "credit_risk.json"


@pytest.fixture(scope="module")
def suite():
    return load_suite(SUITE_PATH)


def write_suite(tmp_path: Path, expectations: list[dict]) -> Path:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"name": "t", "expectations": expectations}))
    return path


def test_bundled_suite_passes_on_generated_data(suite) -> None:
    report = validate_frame(generate_credit_data(800, seed=3), suite, min_rows=500)
    assert report.passed, report.problems
    assert report.evaluated == report.declared == len(suite.spec.expectations)
    require_valid(report)


def test_unknown_expectation_type_is_refused(tmp_path: Path) -> None:
    path = write_suite(tmp_path, [{"type": "expect_column_to_be_awesome", "kwargs": {"column": "a"}}])
    with pytest.raises(
        ConfigError, match=r"expectations\[0\]: unknown expectation type 'expect_column_to_be_awesome'"
    ):
        load_suite(path)


def test_invalid_kwargs_are_refused(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path, [{"type": "expect_column_values_to_be_between", "kwargs": {"colum": "income"}}]
    )
    with pytest.raises(ConfigError, match="invalid kwargs"):
        load_suite(path)


def test_unsupported_type_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        [{"type": "expect_column_quantile_values_to_be_between", "kwargs": {"column": "a"}}],
    )
    with pytest.raises(ConfigError, match="not supported"):
        load_suite(path)
    path.write_text(json.dumps({"name": "t", "expectations": [], "extra": 1}))
    with pytest.raises(ConfigError, match="unknown key 'extra'"):
        load_suite(path)


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text('{"name": "a", "name": "b", "expectations": []}')
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_suite(path)


def test_empty_batch_fails(suite) -> None:
    report = validate_frame(generate_credit_data(10).iloc[0:0], suite, min_rows=1)
    assert not report.passed
    assert any("it is empty" in p for p in report.problems)
    assert any(f"only 0 of {report.declared}" in p for p in report.problems)
    with pytest.raises(ValidationGateError, match="it is empty"):
        require_valid(report)


def test_too_few_rows_fail(suite) -> None:
    report = validate_frame(generate_credit_data(100), suite, min_rows=500)
    assert report.problems == ["the batch has 100 rows, fewer than the 500 the policy requires"]


def test_bad_values_are_reported_per_expectation(suite) -> None:
    frame = generate_credit_data(600, seed=4)
    frame.loc[:9, "income"] = -1.0
    frame = frame.drop(columns=["purpose"])
    report = validate_frame(frame, suite, min_rows=500)
    failed = {(r.type, r.column) for r in report.failed}
    assert ("expect_column_values_to_be_between", "income") in failed
    assert ("expect_column_to_exist", "purpose") in failed
    assert not report.passed
