"""Compliance checks as code: the shipped configuration passes; a broken rule fails (exit 1), a check
that cannot run is an error (exit 2), each with its evidence."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govdeploy.compliance.report import CheckResult, Context, run_checks
from govdeploy.compliance.suite import audit_payload, check
from govdeploy.config.settings import Settings
from govdeploy.serving.gateway.access import load_access
from tests.conftest import CONFIG_DIR

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    copied = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, copied)
    return copied


def _settings(tmp_path: Path, config_dir: Path = CONFIG_DIR) -> Settings:
    return Settings(state_dir=tmp_path / "state", config_dir=config_dir)


def _statuses(settings: Settings) -> dict[str, str]:
    return {c.name: c.status for c in check(settings, load_access, now=NOW).checks}


def test_the_shipped_configuration_passes_without_a_stack(tmp_path: Path) -> None:
    report = check(_settings(tmp_path), load_access, now=NOW)
    assert report.status == "pass" and report.exit_code == 0, report.failures()
    by_name = {c.name: c for c in report.checks}
    assert by_name["serving.evidence"].status == "skip"
    assert by_name["keys.rotation"].status == "skip"  # no keys directory here: their age is not judged
    assert "policy.yaml" in by_name["config.digests"].evidence["files"]
    assert set(audit_payload(report)) == {"status", "checks", "failures", "report_sha256"}


def test_a_required_role_nobody_holds_fails(tmp_path: Path, config: Path) -> None:
    policy = config / "policy.yaml"
    policy.write_text(
        policy.read_text().replace("required_roles: [risk-officer]", "required_roles: [auditor]")
    )
    report = check(_settings(tmp_path, config), load_access, now=NOW)
    (roles,) = [c for c in report.checks if c.name == "approvers.roles"]
    assert roles.status == "fail" and "'auditor'" in roles.summary and report.exit_code == 1


def test_a_key_near_its_valid_until_fails(tmp_path: Path, config: Path) -> None:
    until = (NOW + timedelta(days=10)).isoformat()
    trust = config / "trust.yaml"
    trust.write_text(
        trust.read_text().replace(
            "- key_file: release.pub", f'- key_file: release.pub\n      valid_until: "{until}"'
        )
    )
    assert _statuses(_settings(tmp_path, config))["keys.expiry"] == "fail"


def test_shared_api_keys_and_invalid_files_fail(tmp_path: Path, config: Path) -> None:
    access = config / "access.yaml"
    access.write_text(access.read_text().replace("api/bench.sha256", "api/demo-client.sha256"))
    (config / "models.yaml").write_text("models: {}\n")
    statuses = _statuses(_settings(tmp_path, config))
    assert statuses["access.sanity"] == "fail" and statuses["policy.governance"] == "fail"


def test_io_log_days_past_retention_still_present_fail(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (settings.state_dir / "iolog" / "20200101").mkdir(parents=True)
    (settings.state_dir / "iolog" / "20200101" / "x.jsonl.enc").write_bytes(b"x")
    assert _statuses(settings)["retention.overdue"] == "fail"


def test_a_check_that_cannot_run_is_an_error_and_exits_2(tmp_path: Path) -> None:
    def broken(_: Context) -> CheckResult:
        raise OSError("disk gone")

    report = run_checks(Context(_settings(tmp_path), NOW), [broken])
    assert report.checks[0].status == "error" and "disk gone" in report.checks[0].summary
    assert report.exit_code == 2


def test_the_cli_writes_the_json_report_and_exits_by_status(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "report.json"
    env = {"GOVDEPLOY_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "govdeploy", "compliance", "check", "--json", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "GOVDEPLOY_CONFIG_DIR": str(CONFIG_DIR)},
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["status"] == "pass" == json.loads(out.read_text())["status"]
    (config / "approvers.yaml").write_text("approvers: {}\n")
    bad = subprocess.run(
        [sys.executable, "-m", "govdeploy", "compliance", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "GOVDEPLOY_CONFIG_DIR": str(config)},
    )
    assert bad.returncode == 1 and "approvers.roles" in bad.stdout
