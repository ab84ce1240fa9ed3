"""The registry backend talks to the tracking server it is given, and to nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest

from govdeploy.backends import registry, tracking
from govdeploy.errors import RegistryError

NOBODY = "http://127.0.0.1:9"  # discard port: nothing listens


@pytest.fixture(autouse=True)
def fail_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.chdir(tmp_path)


def test_an_unreachable_server_is_an_error_not_a_local_database(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"read alias 'champion' of 'm' at http://127\.0\.0\.1:9 failed"):
        registry.alias_version("m", "champion", NOBODY)
    with pytest.raises(RegistryError, match=r"127\.0\.0\.1:9"):
        registry.version_tags("m", "1", NOBODY)
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no mlruns/


def test_a_tracking_uri_that_is_not_a_server_is_refused() -> None:
    for uri in ("sqlite:///mlflow.db", "file:./mlruns", "", "databricks"):
        with pytest.raises(RegistryError, match="is not an http"):
            registry.client(uri)


def test_one_client_per_tracking_uri() -> None:
    assert registry.client(NOBODY) is registry.client(NOBODY)
    assert registry.client(NOBODY) is not registry.client("http://127.0.0.1:10")
    assert registry.client(NOBODY)._registry_uri == NOBODY


def test_registry_calls_leave_the_global_tracking_uri_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    with pytest.raises(RegistryError):
        registry.alias_version("m", "champion", NOBODY)
    with pytest.raises(RegistryError):
        tracking.experiment_id(NOBODY, "govdeploy")
    assert mlflow.get_tracking_uri() == before and "MLFLOW_TRACKING_URI" not in os.environ
