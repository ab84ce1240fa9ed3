"""The external profile: what govdeploy's clients and processes are given (never a fixed credential,
never an operator's variable overridden), and what ``up``, ``status`` and ``down`` do (check,
start nothing, stop nothing). No server is started: stub HTTP servers in threads stand in."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import boto3
import pytest
from typer.testing import CliRunner

from govdeploy import cli
from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import StackError
from govdeploy.stack import bucket, components, credentials, manager
from tests.conftest import free_port

AWS_CHAIN = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION")
CLIENT_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    *AWS_CHAIN,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No GOVDEPLOY_*, client or AWS variables but what a test sets; no AWS configuration files."""
    for name in [n for n in os.environ if n.startswith("GOVDEPLOY_")] + list(CLIENT_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the credentials it found first
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def external(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mlflow: str, prefect: str) -> Settings:
    monkeypatch.setenv("GOVDEPLOY_PROFILE", "external")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow)
    monkeypatch.setenv("PREFECT_API_URL", prefect)
    monkeypatch.setenv("GOVDEPLOY_STATE_DIR", str(tmp_path / "state"))
    return Settings(_env_file=None)


def credentials_of(client: object) -> object:
    return client._request_signer._credentials  # type: ignore[attr-defined]


def test_the_local_profile_hands_boto3_the_local_endpoint_and_its_development_credentials(
    tmp_path: Path,
) -> None:
    client = s3_client(Settings(state_dir=tmp_path, s3_port=9911))
    assert client.meta.endpoint_url == "http://127.0.0.1:9911"
    found = credentials_of(client)
    assert (
        found.method == "explicit"
        and found.access_key == components.LOCAL_S3_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    )


def test_the_external_profile_leaves_s3_credentials_to_boto3s_chain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = external(
        monkeypatch, tmp_path, "https://mlflow.example.org", "https://prefect.example.org/api"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    client = s3_client(settings)
    assert client.meta.endpoint_url == "https://s3.eu-west-3.amazonaws.com"
    found = credentials_of(client)
    assert (found.method, found.access_key) == ("env", "AKIAOPERATOR")


def test_web_identity_gives_short_lived_sts_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As on Kubernetes with a service account bound to a role (IRSA): no key anywhere, boto3
    exchanges the projected token for STS credentials when it first signs a request."""
    token = tmp_path / "token"
    token.write_text("a-projected-service-account-token")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/govdeploy")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("GOVDEPLOY_S3_REGION", "eu-central-1")
    monkeypatch.setenv("GOVDEPLOY_S3_ENDPOINT_URL", "https://s3.eu-central-1.amazonaws.com")
    settings = external(
        monkeypatch, tmp_path, "https://mlflow.example.org", "https://prefect.example.org/api"
    )
    client = s3_client(settings)
    assert credentials_of(client).method == "assume-role-with-web-identity"
    assert client.meta.region_name == "eu-central-1"


def test_external_clients_get_the_operators_urls_and_no_credentials_of_govdeploys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = external(
        monkeypatch, tmp_path, "https://mlflow.example.org", "https://prefect.example.org/api"
    )
    credentials.init_server_credentials(settings.keys_dir)  # credentials of a local stack lying around
    env = components.client_env(settings)
    assert env["MLFLOW_TRACKING_URI"] == os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
    assert env["PREFECT_API_URL"] == os.environ["PREFECT_API_URL"]
    assert env["GOVDEPLOY_PROFILE"] == "external"
    assert not {"MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING", "MLFLOW_S3_ENDPOINT_URL"} & set(env)
    assert not [name for name in env if name.startswith("AWS_")]
    assert components.environment_conflicts(settings) == []
    assert [(c.name, c.owned) for c in components.all_components(settings)] == [
        ("s3", False),
        ("mlflow", False),
        ("prefect", False),
    ]


def test_the_cli_keeps_what_the_operator_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    external(monkeypatch, tmp_path, "https://mlflow.example.org", "https://prefect.example.org/api")
    operator = {
        "MLFLOW_TRACKING_URI": "https://mlflow.example.org",
        "PREFECT_API_URL": "https://prefect.example.org/api",
        "PREFECT_API_KEY": "pnu_operator",
        "MLFLOW_TRACKING_USERNAME": "ci-bot",
        "MLFLOW_TRACKING_PASSWORD": "from-the-secret-store",
        "AWS_PROFILE": "production",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "300",
    }
    environment = {**os.environ, **operator}
    monkeypatch.setattr(os, "environ", environment)  # what _use_stack adds is dropped afterwards
    cli._use_stack(get_settings())
    assert {name: environment[name] for name in operator} == operator
    assert environment["GOVDEPLOY_STATE_DIR"] == str(tmp_path / "state")


def test_on_the_local_profile_a_url_variable_naming_another_server_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path, prefect_port=4321)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4321/api/")  # the stack's own: fine
    assert components.environment_conflicts(settings) == []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.org")
    assert components.environment_conflicts(settings) == [
        "MLFLOW_TRACKING_URI=https://mlflow.example.org is set, but the local stack's server is "
        "http://127.0.0.1:5050: to use https://mlflow.example.org, set GOVDEPLOY_PROFILE=external; to use "
        "the local stack, unset MLFLOW_TRACKING_URI"
    ]
    monkeypatch.setenv("GOVDEPLOY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GOVDEPLOY_PREFECT_PORT", "4321")
    result = CliRunner().invoke(cli.app, ["up"])
    assert isinstance(result.exception, cli.CommandFailed)
    assert str(result.exception).startswith(
        "up failed: MLFLOW_TRACKING_URI=https://mlflow.example.org is set"
    )
    assert not (tmp_path / "run").exists()  # nothing started


def test_spawned_processes_inherit_the_operators_client_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    inherited = {"PREFECT_LOGGING_LEVEL": "DEBUG", "MLFLOW_HTTP_REQUEST_TIMEOUT": "33", "AWS_PROFILE": "dev"}
    for name, value in inherited.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None, state_dir=tmp_path)
    credentials.init_server_credentials(settings.keys_dir)
    for component in components.all_components(settings):
        assert {name: component.env[name] for name in inherited} == inherited, component.name
        assert component.env["PREFECT_API_URL"] == settings.prefect_api_url, component.name
    mlflow = components.mlflow(settings)
    assert mlflow.env["MLFLOW_S3_ENDPOINT_URL"] == settings.s3_url  # only its server needs the endpoint
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_for_prefect_cloud")  # Prefect would send it, not ours
    assert "PREFECT_API_KEY" not in components.deployments(settings, "code").env
    assert components.environment_conflicts(settings) == [
        "PREFECT_API_KEY is set, but the local stack's servers take only their own credentials: unset it, "
        "or set GOVDEPLOY_PROFILE=external to use the servers it is for"
    ]
    assert mlflow.env["AWS_ACCESS_KEY_ID"] == components.LOCAL_S3_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    assert "AWS_ACCESS_KEY_ID" not in components.client_env(settings)


class _Health(BaseHTTPRequestHandler):
    """MLflow's /health and Prefect's /api/health; remembers the Authorization headers it got."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        body = {"/health": b"OK", "/api/health": b"true"}.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[str, type[_Health]]]:
    """A stand-in for the external MLflow and Prefect (one HTTP server answering both health checks)."""
    handler = type("Handler", (_Health,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_up_on_the_external_profile_checks_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, servers: tuple[str, type[_Health]]
) -> None:
    url, handler = servers
    settings = external(monkeypatch, tmp_path, url, f"{url}/api")
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_operator")
    monkeypatch.setattr(bucket, "external_problem", lambda _: None)
    messages: list[str] = []
    status = manager.up(settings, messages.append)
    assert status.profile == "external" and status.all_running
    assert {c.name: (c.action, c.pid, c.detail) for c in status.components} == {
        name: ("checked", None, manager.EXTERNAL) for name in ("s3", "mlflow", "prefect")
    }
    assert messages[0].startswith("profile external: govdeploy starts no server here")
    assert "Bearer pnu_operator" in handler.seen  # Prefect's health check as Prefect's client signs in
    assert not settings.state_dir.exists()  # no keys, records or logs: nothing ran
    stopped = manager.down(settings)
    assert [c.action for c in stopped.components] == ["external: left running"] * 3
    assert [c.state for c in stopped.components] == ["running"] * 3


def test_up_on_the_external_profile_names_every_server_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("GOVDEPLOY_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GOVDEPLOY_DEPENDENCY_RETRIES", "0")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    settings = external(monkeypatch, tmp_path, dead, f"{dead}/api")
    with pytest.raises(StackError) as caught:
        manager.up(settings)
    message = str(caught.value)
    assert (
        f"bucket govdeploy-artifacts at {settings.s3_url} cannot be read (EndpointConnectionError" in message
    )
    assert f"mlflow at {dead} does not answer its health check" in message
    assert f"prefect at {dead} does not answer its health check" in message
    assert message.endswith("(GOVDEPLOY_PROFILE=external: govdeploy starts none of them)")
    assert not settings.state_dir.exists()


def test_up_db_chooses_the_local_stacks_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr(
        manager, "up", lambda settings, _progress: seen.append(settings) or manager.status(settings)
    )
    monkeypatch.setenv("GOVDEPLOY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GOVDEPLOY_POSTGRES_BIN_DIR", str(tmp_path / "bin"))
    for name in ("initdb", "postgres"):
        (tmp_path / "bin").mkdir(exist_ok=True)
        (tmp_path / "bin" / name).touch(mode=0o755)
    result = CliRunner().invoke(cli.app, ["up", "--db", "postgres"])
    assert result.exit_code == 0, result.output
    assert [s.database for s in seen] == ["postgres"]
    assert "local profile, postgres" in result.output

    external(monkeypatch, tmp_path, "https://mlflow.example.org", "https://prefect.example.org/api")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli.app, ["up", "--db", "postgres"])
    assert str(result.exception).startswith("up failed: --db chooses the database of the servers the local")


def test_invalid_settings_fail_the_command_with_the_reason_not_a_traceback(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("GOVDEPLOY_")}
    env.update(GOVDEPLOY_STATE_DIR=str(tmp_path), GOVDEPLOY_PROFILE="external")
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-m", "govdeploy", "up"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr == (
        "up failed: the external profile needs MLFLOW_TRACKING_URI (or GOVDEPLOY_MLFLOW_TRACKING_URI): "
        "govdeploy starts no server there\n"
    )
