"""Settings from the environment, and the documented example environment file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from govdeploy.config.settings import PROJECT_ROOT, Settings

EXAMPLE = PROJECT_ROOT / "infra" / "local.env.example"


@pytest.fixture(autouse=True)
def no_govdeploy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets counts (a session's stack exports GOVDEPLOY_* variables)."""
    for name in [n for n in os.environ if n.startswith("GOVDEPLOY_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(PROJECT_ROOT)


def _fields(settings: Settings) -> dict[str, object]:
    return settings.model_dump(exclude={"user", "state_dir", "config_dir"})


def _defaults() -> Settings:
    return Settings(_env_file=None)


def test_the_example_env_file_loads_as_a_dotenv_file() -> None:
    loaded = Settings(_env_file=EXAMPLE)
    assert _fields(loaded) == _fields(_defaults())
    assert loaded.state_dir == PROJECT_ROOT / ".govdeploy"
    assert loaded.config_dir == PROJECT_ROOT / "config"
    assert loaded.user == _defaults().user  # empty means the login name
    assert (loaded.candidate_key, loaded.release_key, loaded.serving_key) == (None, None, None)


def test_the_example_env_file_loads_when_sourced_by_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    script = f"set -a; . {EXAMPLE}; set +a; env -0"
    output = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    sourced = dict(item.split("=", 1) for item in output.split("\0") if item.startswith("GOVDEPLOY_"))
    documented = [line for line in EXAMPLE.read_text().splitlines() if line.startswith("GOVDEPLOY_")]
    assert len(sourced) == len(documented) == len(Settings.model_fields)  # every setting documented
    defaults = _fields(_defaults())
    for name, value in sourced.items():
        monkeypatch.setenv(name, value)
    assert _fields(Settings(_env_file=None)) == defaults


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVDEPLOY_HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match=r"host '0\.0\.0\.0' is not a loopback address"):
        Settings(_env_file=None)


def test_private_keys_of_each_role_come_from_their_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOVDEPLOY_RELEASE_KEY", str(tmp_path / "release.key"))
    settings = Settings(_env_file=None)
    assert settings.release_key == tmp_path / "release.key"
    assert settings.trust_path == settings.config_dir / "trust.yaml"
