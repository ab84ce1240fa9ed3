"""The servers' credentials in the keys directory, and how components and health checks use them
(no server started: the probes run against a stub HTTP server in a thread)."""

from __future__ import annotations

import base64
import configparser
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from govdeploy.config.settings import Settings
from govdeploy.errors import StackError
from govdeploy.stack import components, credentials, manager, process
from govdeploy.stack.health import demands_credentials
from tests.conftest import free_port

SECRET_NAMES = {"MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_USERNAME"}


def secrets_of(keys_dir: Path) -> list[str]:
    found = credentials.load_server_credentials(keys_dir)
    assert found is not None
    return [found.service_password, found.viewer_password, found.flask_secret, found.prefect_auth_string]


def test_keys_init_creates_private_random_credentials_once(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    created = credentials.init_server_credentials(keys)
    assert created == [f"servers/{name}" for name in credentials.SECRETS]
    folder = credentials.servers_dir(keys)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (*credentials.SECRETS, credentials.MLFLOW_AUTH_CONFIG):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    first = secrets_of(keys)
    assert len(set(first)) == 4 and all(len(value) >= 40 for value in first)
    assert first[3].startswith("govdeploy:")
    assert credentials.init_server_credentials(keys) == []
    assert secrets_of(keys) == first


def test_mlflow_reads_the_generated_auth_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.server.auth.config import read_auth_config

    keys = tmp_path / "keys"
    credentials.init_server_credentials(keys)
    env = credentials.mlflow_server_env(keys)
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", env["MLFLOW_AUTH_CONFIG_PATH"])
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    config = read_auth_config()
    assert config.default_permission == "READ"
    assert config.admin_username == credentials.SERVICE_USER
    assert config.admin_password == secrets_of(keys)[0]
    assert config.database_uri == f"sqlite:///{credentials.servers_dir(keys).resolve() / 'mlflow-auth.db'}"
    assert config.authorization_function == "mlflow.server.auth:authenticate_request_basic_auth"


def test_a_new_service_password_retires_the_auth_database_that_holds_the_old_one(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    credentials.init_server_credentials(keys)
    folder = credentials.servers_dir(keys)
    (folder / credentials.MLFLOW_AUTH_DB).write_bytes(b"old users")
    credentials.init_server_credentials(keys)
    assert (folder / credentials.MLFLOW_AUTH_DB).exists()  # other secrets kept: nothing to retire
    (folder / credentials.SERVICE_PASSWORD).unlink()
    assert credentials.init_server_credentials(keys) == [f"servers/{credentials.SERVICE_PASSWORD}"]
    assert not (folder / credentials.MLFLOW_AUTH_DB).exists()
    assert [p.read_bytes() for p in folder.glob("mlflow-auth.db.retired-*")] == [b"old users"]
    parser = configparser.ConfigParser()
    parser.read(folder / credentials.MLFLOW_AUTH_CONFIG)
    assert parser["mlflow"]["admin_password"] == secrets_of(keys)[0]


def test_an_unusable_credential_is_refused_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    credentials.init_server_credentials(keys)
    bad = credentials.servers_dir(keys) / credentials.PREFECT_AUTH
    bad.write_text("no-colon-in-this-long-value")
    with pytest.raises(StackError, match=rf"server credential {bad} is not usable.*delete it and run"):
        credentials.init_server_credentials(keys)


def test_clients_get_credentials_and_servers_only_their_own(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert not SECRET_NAMES & set(components.client_env(settings))  # before keys init: none
    credentials.init_server_credentials(settings.keys_dir)
    service, _viewer, flask, prefect_auth = secrets_of(settings.keys_dir)
    env = components.client_env(settings)
    assert env["MLFLOW_TRACKING_USERNAME"] == "govdeploy"
    assert env["MLFLOW_TRACKING_PASSWORD"] == service
    assert env["PREFECT_API_AUTH_STRING"] == prefect_auth
    by_name = {c.name: c for c in components.all_components(settings)}
    assert not SECRET_NAMES & set(by_name["s3"].env)
    assert not {"MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING"} & set(by_name["mlflow"].env)
    assert by_name["mlflow"].command[-2:] == ["--app-name", "basic-auth"]
    assert by_name["mlflow"].env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == flask
    assert by_name["prefect"].env["PREFECT_SERVER_API_AUTH_STRING"] == prefect_auth
    assert "MLFLOW_TRACKING_PASSWORD" not in by_name["prefect"].env
    for name in ("deployments", "gateway"):
        assert by_name[name].env["MLFLOW_TRACKING_PASSWORD"] == service
        assert by_name[name].env["PREFECT_API_AUTH_STRING"] == prefect_auth


def test_the_fingerprint_follows_the_credentials_and_reveals_none(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert credentials.fingerprint(keys) == ""
    credentials.init_server_credentials(keys)
    first = credentials.fingerprint(keys)
    assert len(first) == 16 and not any(first in value for value in secrets_of(keys))
    (credentials.servers_dir(keys) / credentials.VIEWER_PASSWORD).unlink()
    credentials.init_server_credentials(keys)
    assert credentials.fingerprint(keys) == first  # no process runs with the viewer's password
    (credentials.servers_dir(keys) / credentials.PREFECT_AUTH).unlink()
    credentials.init_server_credentials(keys)
    assert credentials.fingerprint(keys) not in ("", first)


def test_no_message_or_repr_names_a_secret(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    credentials.init_server_credentials(settings.keys_dir)
    found = credentials.load_server_credentials(settings.keys_dir)
    text = repr(found) + credentials.ui_logins(settings) + manager.status(settings).model_dump_json()
    assert str(credentials.servers_dir(settings.keys_dir) / "prefect-auth-string") in text
    for secret in secrets_of(settings.keys_dir):
        assert secret.split(":")[-1] not in text


def test_a_server_started_without_the_credentials_must_restart(tmp_path: Path) -> None:
    """A server of a stack started before its credentials existed (its record has none)."""
    settings = Settings(state_dir=tmp_path)
    credentials.init_server_credentials(settings.keys_dir)
    prefect = components.prefect(settings)
    record = process.ProcessRecord(name="prefect", pid=1, start_ticks=0, port=1, url="", log="", command=[])
    process.write_record(tmp_path / "run" / "prefect.json", record)
    assert manager._restart_reason(settings, prefect) == (
        "runs without the current server credentials (started before they were created or changed)"
    )
    process.write_record(
        tmp_path / "run" / "prefect.json", record.model_copy(update={"credentials": prefect.credentials})
    )
    assert manager._restart_reason(settings, prefect) is None
    assert manager._restart_reason(settings, components.s3(settings)) is None


class _Stub(BaseHTTPRequestHandler):
    expected: str | None = None  # the Authorization header it accepts; None: anybody

    def do_GET(self) -> None:
        given = self.headers.get("Authorization")
        ok = self.expected is None or given == self.expected
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[tuple[str, type[_Stub]]]:
    handler = type("Handler", (_Stub,), {})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/admin/version", handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_auth_probe_tells_a_guarded_server_from_an_open_one(stub: tuple[str, type[_Stub]]) -> None:
    url, handler = stub
    auth = ("govdeploy", "a-long-random-secret")
    assert not demands_credentials(url, auth)()  # answers anybody: started without authentication
    handler.expected = "Basic " + base64.b64encode(b"govdeploy:a-long-random-secret").decode()
    assert demands_credentials(url, auth)()
    assert not demands_credentials(url, ("govdeploy", "another-secret-value"))()  # not our credential
    assert not demands_credentials(url, None)()  # no credentials yet
