"""The local stack's choice of database and how MLflow and Prefect are pointed at PostgreSQL, without
starting a server (``test_postgres_integration`` runs them)."""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import pytest

from govdeploy.config.settings import Settings
from govdeploy.errors import StackError
from govdeploy.stack import components, credentials, database, manager


@pytest.fixture
def programs(tmp_path: Path) -> Path:
    """Stand-ins for PostgreSQL's server programs (never run here)."""
    folder = tmp_path / "pgbin"
    folder.mkdir()
    for name in ("initdb", "postgres"):
        (folder / name).touch(mode=0o755)
    return folder


def on_postgres(tmp_path: Path, programs: Path) -> Settings:
    settings = Settings(
        state_dir=tmp_path / "state", database="postgres", postgres_port=5999, postgres_bin_dir=programs
    )
    credentials.init_server_credentials(settings.keys_dir)
    credentials.write_secret(
        credentials.servers_dir(settings.keys_dir) / database.PASSWORD, "pg-secret-value"
    )
    return settings


def test_the_state_directorys_data_decides_the_database(tmp_path: Path) -> None:
    fresh = Settings(state_dir=tmp_path)
    assert database.kind(fresh) == "sqlite"
    assert database.kind(fresh.model_copy(update={"database": "postgres"})) == "postgres"
    (tmp_path / "mlflow.db").touch()
    with pytest.raises(
        StackError,
        match=rf"the stack in {tmp_path} keeps MLflow's and Prefect's data in sqlite, so it cannot start them "
        r"on postgres \(nothing migrates between them\): choose another GOVDEPLOY_STATE_DIR",
    ):
        database.kind(fresh.model_copy(update={"database": "postgres"}))
    (tmp_path / "mlflow.db").unlink()
    database.cluster_dir(fresh).mkdir(parents=True)
    (database.cluster_dir(fresh) / "PG_VERSION").write_text("15\n")
    assert database.kind(fresh) == "postgres"  # `up` without --db keeps using it
    with pytest.raises(StackError, match="data in postgres, so it cannot start them on sqlite"):
        database.kind(fresh.model_copy(update={"database": "sqlite"}))


def test_missing_server_programs_name_where_govdeploy_looked_and_the_fix(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, database="postgres", postgres_bin_dir=tmp_path / "nothing")
    with pytest.raises(StackError) as caught:
        database.bin_dir(settings)
    assert str(caught.value) == (
        f"PostgreSQL's server programs (initdb, postgres) are not in {tmp_path / 'nothing'}: install the "
        "PostgreSQL server (Debian: apt-get install postgresql) or set GOVDEPLOY_POSTGRES_BIN_DIR to their "
        "directory"
    )


def test_mlflow_and_prefect_get_a_postgresql_url_without_the_password(tmp_path: Path, programs: Path) -> None:
    settings = on_postgres(tmp_path, programs)
    every = {c.name: c for c in components.all_components(settings)}
    assert list(every) == ["postgres", "s3", "mlflow", "prefect", "deployments", "gateway"]
    assert [[c.name for c in wave] for wave in manager._waves(list(every.values()))] == [
        ["postgres", "s3"],
        ["mlflow", "prefect"],
        ["deployments", "gateway"],
    ]
    mlflow = every["mlflow"]
    store = mlflow.command[mlflow.command.index("--backend-store-uri") + 1]
    assert store == "postgresql://govdeploy@127.0.0.1:5999/mlflow"
    assert mlflow.env["PGPASSWORD"] == "pg-secret-value"
    prefect = every["prefect"].env
    assert (
        prefect["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
        == "postgresql+asyncpg://govdeploy@127.0.0.1:5999/prefect"
    )
    assert prefect["PREFECT_API_DATABASE_CONNECTION_URL"] == prefect["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert prefect["PGPASSWORD"] == "pg-secret-value"
    for name in ("s3", "deployments", "gateway", "postgres"):
        assert every[name].env.get("PGPASSWORD") != "pg-secret-value", name
    server = every["postgres"]
    assert "pg-secret-value" not in " ".join(server.command)
    assert server.stop_signal == signal.SIGINT  # fast shutdown: SIGTERM waits for every client
    command = [str(programs / "postgres"), "-D", str(database.cluster_dir(settings)), "-h", "127.0.0.1"]
    command += ["-p", "5999", "-c", "unix_socket_directories="]
    assert server.command == database.as_server_user(command)
    if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as the postgres user
        assert server.command[1:5] == ["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    else:
        assert server.command == command


def test_sqlite_stays_the_default(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    every = {c.name: c for c in components.all_components(settings)}
    assert "postgres" not in every
    mlflow = every["mlflow"]
    assert (
        mlflow.command[mlflow.command.index("--backend-store-uri") + 1]
        == f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    url = every["prefect"].env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url == f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"


def test_postgresql_needs_the_psycopg2_driver(
    tmp_path: Path, programs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = on_postgres(tmp_path, programs)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "psycopg2" else real(name))
    with pytest.raises(
        StackError, match="MLflow on PostgreSQL needs the psycopg2 driver: pip install psycopg2-binary"
    ):
        database.prepare(settings, lambda _: None)


def test_a_cluster_the_postgres_user_cannot_reach_is_refused_with_the_fix(tmp_path: Path) -> None:
    """As root, PostgreSQL runs as 'postgres'; pytest's temporary directories are private (0700)."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(StackError) as caught:
        database._reachable(private)
    assert str(caught.value) == (
        f"PostgreSQL runs as the 'postgres' user (it refuses root), who cannot reach {private} ({private} is "
        f"not searchable by others): chmod o+x {private}, or choose a GOVDEPLOY_STATE_DIR that user can reach"
    )
