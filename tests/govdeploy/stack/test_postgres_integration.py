"""The local stack on PostgreSQL (``govdeploy up --db postgres``): ``up`` creates a cluster under its
own state directory and runs it, MLflow and Prefect keep their data in it, and ``down`` stops it.

A stack of its own (ports, state directory) beside the session's. Nothing is skipped: without
PostgreSQL's server programs the test fails, saying where it looked and what to install.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from govdeploy.backends import registry
from govdeploy.config.settings import Settings
from govdeploy.errors import StackError
from govdeploy.stack import credentials, database, manager, process
from tests.conftest import CONFIG_DIR, free_port

pytestmark = pytest.mark.integration

MODEL = "postgres-proof"


@pytest.fixture
def settings() -> Iterator[Settings]:
    # as root, PostgreSQL runs as the 'postgres' user, who must reach the state directory: pytest's
    # own temporary directories are private to root
    state = Path(tempfile.mkdtemp(prefix="govdeploy-pg-"))
    state.chmod(0o755)
    settings = Settings(
        state_dir=state,
        config_dir=CONFIG_DIR,
        database="postgres",
        postgres_port=free_port(),
        s3_port=free_port(),
        mlflow_port=free_port(),
        prefect_port=free_port(),
        gateway_port=free_port(),
    )
    try:
        database.bin_dir(settings)
    except StackError as exc:
        pytest.fail(f"PostgreSQL is needed for this test and missing: {exc}")
    try:
        yield settings
    finally:
        manager.down(settings)
        shutil.rmtree(state, ignore_errors=True)


def rows(settings: Settings, name: str, query: str, *parameters: object) -> list[tuple[Any, ...]]:
    """What ``query`` finds in the stack's PostgreSQL database ``name``."""
    import psycopg2

    connection = psycopg2.connect(
        host=settings.host,
        port=settings.postgres_port,
        user=database.ROLE,
        password=database.password(settings),
        dbname=name,
        connect_timeout=5,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, parameters)
            return list(cursor.fetchall())
    finally:
        connection.close()


def register_a_version(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(run id, version) of a version registered through govdeploy's MLflow client."""
    for name, value in credentials.client_credentials(settings.keys_dir).items():
        monkeypatch.setenv(name, value)
    client = registry.client(settings.mlflow_url)
    run = client.create_run(client.create_experiment("postgres-proof"))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    created = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return run.info.run_id, str(created.version)


def run_a_flow(settings: Settings) -> str:
    """The id of a tiny flow run on the stack's Prefect, completed."""
    from prefect import flow
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    @flow(name="postgres-proof")
    def tiny(value: int) -> int:
        return value + 1

    auth = credentials.client_credentials(settings.keys_dir)["PREFECT_API_AUTH_STRING"]
    updates = {
        PREFECT_API_URL: settings.prefect_api_url,
        PREFECT_API_AUTH_STRING: auth,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
    }
    with temporary_settings(updates=updates):
        state = tiny(41, return_state=True)
    assert state.is_completed() and state.result() == 42
    return str(state.state_details.flow_run_id)


def test_mlflow_and_prefect_keep_their_data_in_the_stacks_postgresql(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = manager.up(settings)
    assert started.all_running, started
    assert started.database == "postgres"
    assert [c.name for c in started.components][:1] == ["postgres"]
    assert (database.cluster_dir(settings) / "PG_VERSION").exists()
    mlflow = {c.name: c for c in manager.status(settings).components}["mlflow"]
    record = process.read_record(manager._record_path(settings, "mlflow"))
    assert record is not None and database.mlflow_store(settings) in record.command
    assert database.password(settings) not in " ".join(record.command)  # the URL carries no password
    assert mlflow.state == "running"

    run_id, version = register_a_version(settings, monkeypatch)
    flow_run = run_a_flow(settings)

    found = rows(settings, "mlflow", "SELECT version, run_id FROM model_versions WHERE name = %s", MODEL)
    assert found == [(int(version), run_id)]
    assert rows(settings, "mlflow", "SELECT status FROM runs WHERE run_uuid = %s", run_id) == [("FINISHED",)]
    runs = rows(settings, "prefect", "SELECT state_type FROM flow_run WHERE id = %s::uuid", flow_run)
    assert [str(state) for (state,) in runs] == ["COMPLETED"]
    served = {name for (name,) in rows(settings, "prefect", "SELECT name FROM deployment")}
    assert {"train", "release", "rollback"} <= served  # the deployments process registered them there
    assert not [p.name for p in settings.state_dir.glob("*.db")]  # no SQLite database beside them

    stopped = manager.down(settings)
    assert all(c.state == "stopped" for c in stopped.components), stopped
    assert not process.port_in_use(settings.host, settings.postgres_port)
