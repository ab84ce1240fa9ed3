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


CLIENT_URLS = ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


@pytest.fixture
def no_client_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nor the clients' own URL variables (a session's stack exports them too)."""
    for name in CLIENT_URLS:
        monkeypatch.delenv(name, raising=False)


def test_the_local_profile_builds_every_url_from_host_and_ports(no_client_urls: None) -> None:
    settings = Settings(_env_file=None, mlflow_port=5151, prefect_port=4242, s3_port=9999)
    assert settings.profile == "local" and settings.local
    assert (settings.mlflow_url, settings.prefect_api_url) == (
        "http://127.0.0.1:5151",
        "http://127.0.0.1:4242/api",
    )
    assert (settings.s3_url, settings.s3_endpoint, settings.s3_region_name) == (
        "http://127.0.0.1:9999",
        "http://127.0.0.1:9999",
        "us-east-1",
    )


def test_the_external_profile_uses_the_clients_own_variables(
    monkeypatch: pytest.MonkeyPatch, no_client_urls: None
) -> None:
    monkeypatch.setenv("GOVDEPLOY_PROFILE", "external")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.org/")
    monkeypatch.setenv("PREFECT_API_URL", "https://prefect.example.org/api")
    monkeypatch.setenv("GOVDEPLOY_HOST", "0.0.0.0")  # the gateway of a container binds every address
    settings = Settings(_env_file=None)
    assert not settings.local
    assert settings.mlflow_url == "https://mlflow.example.org"
    assert (settings.prefect_api_url, settings.prefect_ui_url) == (
        "https://prefect.example.org/api",
        "https://prefect.example.org",
    )
    assert (settings.s3_endpoint, settings.s3_region_name) == (None, None)  # boto3 decides: AWS
    assert settings.s3_url == "https://s3.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://minio.example.org")
    assert Settings(_env_file=None).s3_url == "https://minio.example.org"  # what boto3 will use


def test_govdeploys_endpoint_variables_choose_the_external_profile(
    monkeypatch: pytest.MonkeyPatch, no_client_urls: None
) -> None:
    monkeypatch.setenv("GOVDEPLOY_MLFLOW_TRACKING_URI", "https://mlflow.example.org")
    monkeypatch.setenv("GOVDEPLOY_PREFECT_API_URL", "https://prefect.example.org/api")
    monkeypatch.setenv("GOVDEPLOY_S3_ENDPOINT_URL", "https://minio.example.org:9000/")
    monkeypatch.setenv("GOVDEPLOY_S3_REGION", "eu-central-1")
    settings = Settings(_env_file=None)
    assert settings.profile == "external"
    assert (settings.mlflow_url, settings.prefect_api_url) == (
        "https://mlflow.example.org",
        "https://prefect.example.org/api",
    )
    assert (settings.s3_endpoint, settings.s3_url) == ("https://minio.example.org:9000",) * 2
    assert settings.s3_region_name == "eu-central-1"
    monkeypatch.setenv("PREFECT_API_URL", "https://prefect.example.org/api/")  # the same server: fine
    assert Settings(_env_file=None).prefect_api_url == "https://prefect.example.org/api"


def test_two_different_urls_for_one_server_are_refused_not_resolved(
    monkeypatch: pytest.MonkeyPatch, no_client_urls: None
) -> None:
    monkeypatch.setenv("GOVDEPLOY_MLFLOW_TRACKING_URI", "https://mlflow.example.org")
    monkeypatch.setenv("GOVDEPLOY_PREFECT_API_URL", "https://prefect.example.org/api")
    monkeypatch.setenv("PREFECT_API_URL", "https://other.example.org/api")
    with pytest.raises(
        ValidationError,
        match=r"GOVDEPLOY_PREFECT_API_URL='https://prefect\.example\.org/api' and "
        r"PREFECT_API_URL='https://other\.example\.org/api' name different servers; unset one of them",
    ):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"GOVDEPLOY_PROFILE": "external", "MLFLOW_TRACKING_URI": "https://mlflow.example.org"},
            r"the external profile needs PREFECT_API_URL \(or GOVDEPLOY_PREFECT_API_URL\)",
        ),
        (
            {
                "GOVDEPLOY_PROFILE": "external",
                "MLFLOW_TRACKING_URI": "databricks",
                "PREFECT_API_URL": "http://p/api",
            },
            r"MLFLOW_TRACKING_URI='databricks' is not an http\(s\) URL",
        ),
        (
            {"GOVDEPLOY_PROFILE": "local", "GOVDEPLOY_S3_ENDPOINT_URL": "https://minio.example.org"},
            r"GOVDEPLOY_S3_ENDPOINT_URL set, but GOVDEPLOY_PROFILE is 'local'.*set GOVDEPLOY_PROFILE=external",
        ),
        (
            {
                "GOVDEPLOY_DATABASE": "postgres",
                "GOVDEPLOY_MLFLOW_TRACKING_URI": "https://m",
                "GOVDEPLOY_PREFECT_API_URL": "https://p/api",
            },
            r"GOVDEPLOY_DATABASE=postgres chooses the database of the servers the local profile runs",
        ),
    ],
)
def test_an_incomplete_or_contradictory_profile_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, no_client_urls: None, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)


def test_the_local_profile_ignores_the_clients_url_variables(
    monkeypatch: pytest.MonkeyPatch, no_client_urls: None
) -> None:
    """The local stack's URLs are its own; the CLI refuses to run beside variables that disagree
    (``components.environment_conflicts``) rather than silently replacing them."""
    monkeypatch.setenv("PREFECT_API_URL", "https://prefect.example.org/api")
    settings = Settings(_env_file=None)
    assert settings.local and settings.prefect_api_url == "http://127.0.0.1:4200/api"


def test_gateway_replicas_come_as_a_json_list(monkeypatch: pytest.MonkeyPatch, no_client_urls: None) -> None:
    assert Settings(_env_file=None, gateway_port=8181).gateway_urls == ["http://127.0.0.1:8181"]
    monkeypatch.setenv("GOVDEPLOY_GATEWAY_REPLICAS", '["http://gw-0:8080/", "http://gw-1:8080"]')
    monkeypatch.setenv("GOVDEPLOY_GATEWAY_ENDPOINT", "http://gateway.govdeploy.svc:8080")
    settings = Settings(_env_file=None)
    assert settings.gateway_urls == ["http://gw-0:8080", "http://gw-1:8080"]
    assert settings.gateway_url == "http://gateway.govdeploy.svc:8080"
