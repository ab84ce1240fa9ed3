"""The console script as a user runs it: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import CONFIG_DIR


def govdeploy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govdeploy", *args], capture_output=True, text=True, timeout=120
    )


def test_policy_check_accepts_the_bundled_policy() -> None:
    result = govdeploy("policy", "check", str(CONFIG_DIR / "policy.yaml"))
    assert result.returncode == 0, result.stderr
    assert "policy OK" in result.stdout
    assert "42 expectations" in result.stdout


def test_policy_check_refuses_a_bad_policy(tmp_path: Path) -> None:
    for name in ("models.yaml", "expectations/credit_risk.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((CONFIG_DIR / name).read_text())
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        (CONFIG_DIR / "policy.yaml").read_text().replace("  quorum: 2", "  quorum: 2\n  quorom: 3")
    )
    result = govdeploy("policy", "check", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"policy check failed: policy file {bad} is invalid: unknown key 'approval.quorom'"
    )
    assert "Traceback" not in result.stderr


def test_help_shows_real_invocations() -> None:
    result = govdeploy("--help")
    assert result.returncode == 0
    for command in ("up", "down", "status", "demo", "policy", "train", "release"):
        assert command in result.stdout
    assert "govdeploy release --model credit-risk --version 1" in result.stdout
