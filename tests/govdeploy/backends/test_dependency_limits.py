"""A dependency that is down or hangs fails a call within seconds, with an error naming it.

MLflow's client retries a dead server for about four minutes by default and botocore waits 60 s
per read; govdeploy bounds both by ``dependency_retries`` and ``dependency_timeout_seconds``, and
leaves the operator's own environment variables alone.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from govdeploy.backends import registry
from govdeploy.backends.storage import read_object, s3_client
from govdeploy.backends.tracking import log_run_files
from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import RegistryError, StorageError
from govdeploy.stack import components, credentials, manager, process
from tests.conftest import free_port

BOUND = 15.0  # seconds a call to a dead or hung dependency may take, with the test settings
MLFLOW_LIMITS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD",
    "MLFLOW_DISABLE_TELEMETRY",
)


@pytest.fixture
def own_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No operator limits in the environment; 2 s timeouts from govdeploy's settings. Whatever the
    registry client sets in the environment is undone afterwards."""
    for name in (*MLFLOW_LIMITS, "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "PREFECT_CLIENT_MAX_RETRIES"):
        monkeypatch.setenv(name, "placeholder")  # so that undo removes what the test run sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("GOVDEPLOY_DEPENDENCY_TIMEOUT_SECONDS", "2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a server that hangs)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def test_mlflow_limits_come_from_settings_unless_the_operator_set_them(own_limits: None) -> None:
    settings = Settings(dependency_retries=3, dependency_timeout_seconds=7)
    assert registry.http_limits(settings) == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "7",
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "300"
    assert registry.http_limits(settings)["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
    limits = components.client_env(settings)
    assert limits["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
    assert limits["PREFECT_CLIENT_MAX_RETRIES"] == "3"
    # nothing reports usage to MLflow's collector: not the clients, not the servers the stack runs
    assert limits["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert components.mlflow(settings).env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_the_s3_client_times_out_and_retries_as_configured(own_limits: None) -> None:
    config = s3_client(Settings(dependency_retries=1, dependency_timeout_seconds=4)).meta.config
    assert (config.connect_timeout, config.read_timeout) == (4, 4)
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
    os.environ["AWS_MAX_ATTEMPTS"] = "9"
    assert s3_client(Settings()).meta.config.retries == {"total_max_attempts": 9, "mode": "standard"}


def timed_failure(call: object, expected: type[Exception]) -> tuple[float, str]:
    assert callable(call)
    start = time.monotonic()
    with pytest.raises(expected) as caught:
        call()
    return time.monotonic() - start, str(caught.value)


@pytest.mark.integration
@pytest.mark.parametrize("state", ["dead", "hung"])
def test_a_registry_call_to_an_mlflow_that_is_down_fails_within_seconds(
    own_limits: None, hung_port: int, state: str
) -> None:
    uri = f"http://127.0.0.1:{free_port() if state == 'dead' else hung_port}"
    registry.client(uri)  # constructed first: the bound covers the calls, not MLflow's import
    elapsed, message = timed_failure(lambda: registry.version_tags("credit-risk", "1", uri), RegistryError)
    assert elapsed < BOUND, f"{state} MLflow took {elapsed:.1f} s to fail"
    assert message.startswith(f"read model 'credit-risk' version 1: MLflow at {uri} is unreachable")
    assert "govdeploy up" in message


@pytest.mark.integration
def test_an_s3_call_to_an_endpoint_that_hangs_or_stopped_fails_within_seconds(
    own_limits: None, tmp_path: Path
) -> None:
    settings = Settings(state_dir=tmp_path, s3_port=free_port())
    s3 = components.s3(settings)
    log = tmp_path / "s3.log"
    child = process.spawn("s3", s3.command, s3.env, log, tmp_path)
    try:
        process.wait_healthy("s3", child, s3.healthy, 30, log)
        client = components.local_s3_client(settings)
        client.create_bucket(Bucket="bucket")
        client.put_object(Bucket="bucket", Key="key", Body=b"kept")
        assert read_object(client, "bucket", "key") == b"kept"

        child.send_signal(signal.SIGSTOP)  # the endpoint hangs: connections open, no answer
        elapsed, message = timed_failure(lambda: read_object(client, "bucket", "key"), StorageError)
        assert elapsed < BOUND, f"a hung S3 endpoint took {elapsed:.1f} s to fail"
        assert message.startswith("s3://bucket/key could not be read (ReadTimeoutError")
        assert settings.s3_url in message
        child.send_signal(signal.SIGCONT)
    finally:
        child.send_signal(signal.SIGCONT)
        child.terminate()
        child.wait(timeout=30)
    elapsed, message = timed_failure(lambda: read_object(client, "bucket", "key"), StorageError)
    assert elapsed < BOUND, f"a stopped S3 endpoint took {elapsed:.1f} s to fail"
    assert "EndpointConnectionError" in message and settings.s3_url in message


@pytest.mark.integration
def test_an_artifact_upload_through_mlflow_whose_s3_is_down_fails_within_seconds(
    own_limits: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow answers, its artifact store does not: the upload a promotion makes fails fast too."""
    settings = Settings(state_dir=tmp_path, mlflow_port=free_port(), s3_port=free_port())
    credentials.init_server_credentials(settings.keys_dir)
    mlflow = components.mlflow(settings)
    child, record = manager._launch(settings, mlflow)
    try:
        process.wait_healthy("mlflow", child, mlflow.healthy, settings.start_timeout, Path(record.log))
        for name, value in credentials.client_credentials(settings.keys_dir).items():
            monkeypatch.setenv(name, value)
        server = registry.client(settings.mlflow_url)
        run_id = server.create_run(server.create_experiment("limits")).info.run_id
        files = tmp_path / "files"
        files.mkdir()
        (files / "signature.json").write_text("{}")
        elapsed, message = timed_failure(
            lambda: log_run_files(run_id, files, "release", settings.mlflow_url), RegistryError
        )
    finally:
        manager._stop_component(settings, mlflow)
    assert elapsed < BOUND, f"an upload to MLflow without its S3 took {elapsed:.1f} s to fail"
    assert f"MLflow at {settings.mlflow_url} kept answering with server errors" in message
    assert "its S3 store may be down" in message
