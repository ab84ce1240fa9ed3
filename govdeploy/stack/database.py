"""The local stack's PostgreSQL server (``govdeploy up --db postgres``), for MLflow and Prefect.

One cluster under ``<state>/postgres/data`` that ``up`` creates (initdb) and runs like every other
component: on ``host:postgres_port`` over TCP only (no Unix socket), with password authentication
(SCRAM) for the superuser role ``govdeploy``, whose password is generated once into
``<keys>/servers/postgres.password``; MLflow uses the database ``mlflow``, Prefect ``prefect``. The
servers get the password as ``PGPASSWORD`` (their URLs carry none, so no command line or pid
record shows it). MLflow's user database stays beside the server credentials (SQLite).

PostgreSQL refuses to run as root: as root, initdb and postgres run as the ``postgres`` system user
(``setpriv``), who owns ``<state>/postgres`` and must be able to reach it.

The data decides which database a state directory uses: a cluster means PostgreSQL, ``mlflow.db``
or ``prefect.db`` mean SQLite. Asking for the other one is an error: nothing migrates between them.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from govdeploy.config.settings import Database, Settings
from govdeploy.errors import StackError
from govdeploy.stack import credentials, process

ROLE = "govdeploy"  # the superuser role MLflow and Prefect connect as
DATABASES = ("mlflow", "prefect")
PASSWORD = "postgres.password"
OS_USER = "postgres"  # who runs PostgreSQL when govdeploy runs as root
SQLITE_FILES = ("mlflow.db", "prefect.db")

Progress = Callable[[str], None]


def cluster_dir(settings: Settings) -> Path:
    return settings.state_dir / "postgres" / "data"


def kind(settings: Settings) -> Database:
    """The database of the local stack's MLflow and Prefect; StackError when ``database`` asks for
    another than the state directory's data is in."""
    found: Database | None = None
    if (cluster_dir(settings) / "PG_VERSION").exists():
        found = "postgres"
    elif any((settings.state_dir / name).exists() for name in SQLITE_FILES):
        found = "sqlite"
    wanted = settings.database
    if found and wanted and found != wanted:
        raise StackError(
            f"the stack in {settings.state_dir} keeps MLflow's and Prefect's data in {found}, so it cannot "
            f"start them on {wanted} (nothing migrates between them): choose another GOVDEPLOY_STATE_DIR "
            f"for {wanted}, or leave out --db / GOVDEPLOY_DATABASE"
        )
    return found or wanted or "sqlite"


def bin_dir(settings: Settings) -> Path:
    """The directory of PostgreSQL's initdb and postgres; StackError naming where it looked."""
    candidates = [settings.postgres_bin_dir] if settings.postgres_bin_dir else _default_bin_dirs()
    for candidate in candidates:
        if all(os.access(candidate / name, os.X_OK) for name in ("initdb", "postgres")):
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "PATH and /usr/lib/postgresql/*/bin"
    raise StackError(
        f"PostgreSQL's server programs (initdb, postgres) are not in {looked}: install the PostgreSQL "
        "server (Debian: apt-get install postgresql) or set GOVDEPLOY_POSTGRES_BIN_DIR to their directory"
    )


def _default_bin_dirs() -> list[Path]:
    on_path = [
        Path(found).resolve().parent for name in ("pg_ctl", "postgres") if (found := shutil.which(name))
    ]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)

    packaged = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    return list(dict.fromkeys([*on_path, *packaged]))


def as_server_user(command: list[str]) -> list[str]:
    """``command`` as PostgreSQL may run it: as the ``postgres`` system user when this is root."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise StackError("PostgreSQL refuses to run as root, and setpriv (util-linux) is not installed")
    _os_user()
    return [setpriv, f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups", "--", *command]


def _os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise StackError(
            f"PostgreSQL refuses to run as root and there is no '{OS_USER}' user to run it as: create that "
            "user (the PostgreSQL packages do) or run govdeploy as an ordinary user"
        ) from None


def password(settings: Settings) -> str:
    """The ``govdeploy`` role's password; StackError when its file is missing."""
    path = credentials.servers_dir(settings.keys_dir) / PASSWORD
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StackError(
            f"the PostgreSQL password {path} cannot be read ({exc}); restore it, or remove "
            f"{cluster_dir(settings).parent} to start over with an empty database"
        ) from None


def server_env(settings: Settings) -> dict[str, str]:
    """What MLflow and Prefect need besides their database URL (nothing before ``prepare``)."""
    path = credentials.servers_dir(settings.keys_dir) / PASSWORD
    return {"PGPASSWORD": password(settings)} if path.exists() else {}


def mlflow_store(settings: Settings) -> str:
    return f"postgresql://{ROLE}@{settings.host}:{settings.postgres_port}/mlflow"


def prefect_store(settings: Settings) -> str:
    return f"postgresql+asyncpg://{ROLE}@{settings.host}:{settings.postgres_port}/prefect"


def prepare(settings: Settings, progress: Progress) -> None:
    """Check what PostgreSQL needs and create the cluster (and its password) if there is none."""
    if importlib.util.find_spec("psycopg2") is None:
        raise StackError(
            "MLflow on PostgreSQL needs the psycopg2 driver: pip install psycopg2-binary (Prefect's asyncpg "
            "comes with Prefect)"
        )
    programs = bin_dir(settings)
    if (cluster_dir(settings) / "PG_VERSION").exists():
        password(settings)
        return
    root = cluster_dir(settings).parent
    if os.geteuid() == 0:
        _reachable(root.parent)
    secret = credentials.servers_dir(settings.keys_dir) / PASSWORD
    if not secret.exists():
        credentials.write_secret(secret, credentials.new_token())
    _initdb(settings, programs, root)
    progress(f"created the PostgreSQL cluster {cluster_dir(settings)} (role {ROLE}, password in {secret})")


def _reachable(directory: Path) -> None:
    """The ``postgres`` user can reach ``directory`` (every directory down to it searchable)."""
    uid = _os_user().pw_uid
    for path in [directory, *directory.parents]:
        mode = path.stat()
        if not (mode.st_mode & stat.S_IXOTH or mode.st_uid == uid):
            raise StackError(
                f"PostgreSQL runs as the '{OS_USER}' user (it refuses root), who cannot reach {directory} "
                f"({path} is not searchable by others): chmod o+x {path}, or choose a GOVDEPLOY_STATE_DIR "
                "that user can reach"
            )


def _initdb(settings: Settings, programs: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    owner = _os_user() if os.geteuid() == 0 else None
    pwfile = root / "initdb.password"
    pwfile.unlink(missing_ok=True)
    credentials.write_secret(pwfile, password(settings))
    for path in (root, pwfile):
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    log = settings.state_dir / "logs" / "postgres-initdb.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    options = ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions"]
    initdb = [str(programs / "initdb"), "-D", str(cluster_dir(settings)), "-U", ROLE, f"--pwfile={pwfile}"]
    command = as_server_user([*initdb, *options])
    try:
        with log.open("ab") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=root, check=False)
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise StackError(
            f"initdb failed (exit code {done.returncode}); see its log {log} (a directory left by an earlier "
            f"failed attempt: remove {cluster_dir(settings)} and run 'govdeploy up' again):\n"
            f"{process.log_tail(log)}"
        )


def _connect(settings: Settings, database: str = "postgres") -> Any:
    import psycopg2

    return psycopg2.connect(
        host=settings.host,
        port=settings.postgres_port,
        user=ROLE,
        password=password(settings),
        dbname=database,
        connect_timeout=3,
    )


def accepts(settings: Settings) -> bool:
    """PostgreSQL answers and accepts the role's password (the component's health check)."""
    try:
        import psycopg2
    except ImportError:
        return False
    try:
        _connect(settings).close()
    except (psycopg2.Error, StackError):
        return False
    return True


def ensure_databases(settings: Settings, progress: Progress) -> None:
    """Create MLflow's and Prefect's databases where missing."""
    connection = _connect(settings)
    try:
        connection.autocommit = True  # CREATE DATABASE refuses to run in a transaction
        with connection.cursor() as cursor:
            for name in DATABASES:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}" OWNER "{ROLE}"')
                    progress(f"created PostgreSQL database {name}")
    finally:
        connection.close()
