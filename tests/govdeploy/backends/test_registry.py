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


@pytest.mark.parametrize("before", [None, "http://127.0.0.1:11"])
def test_the_fluent_api_is_pointed_at_the_server_only_for_the_call(
    monkeypatch: pytest.MonkeyPatch, before: str | None
) -> None:
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    if before is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", before)
    outside = mlflow.get_tracking_uri()
    with tracking._fluent(NOBODY):
        assert mlflow.get_tracking_uri() == NOBODY
        assert mlflow.get_registry_uri() == NOBODY
    assert mlflow.get_tracking_uri() == outside
    assert os.environ.get("MLFLOW_TRACKING_URI") == before
    assert "MLFLOW_REGISTRY_URI" not in os.environ
