"""Credentials of the local stack's MLflow and Prefect servers, generated into ``<keys>/servers/``.

``init_server_credentials`` creates, once (directory 0700, files 0600):

- ``mlflow-govdeploy.password``  the service account ``govdeploy``: MLflow's admin, used by every
                                 govdeploy process (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``)
- ``mlflow-viewer.password``     the read-only user ``viewer`` for people (MLflow UI)
- ``mlflow-flask-secret.key``    the MLflow auth app's Flask secret (CSRF of its sign-up form)
- ``prefect-auth-string``        ``govdeploy:<random>``, the one Prefect API and UI credential
- ``mlflow-basic-auth.ini``      MLflow's auth configuration (``MLFLOW_AUTH_CONFIG_PATH``): the
                                 admin, ``default_permission = READ``, the auth database below
- ``mlflow-auth.db``             MLflow's user and permission database (created by the server)
- ``postgres.password``          the PostgreSQL role ``govdeploy`` (only with ``up --db postgres``;
                                 created with the cluster by ``govdeploy.stack.database``)

The auth database lives beside the credentials so that a regenerated service password never meets
an auth database that still holds the old one. No message, log line or ``repr`` names a secret.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from govdeploy.backends import mlflow_auth
from govdeploy.config.settings import Settings
from govdeploy.errors import StackError

SERVICE_USER = "govdeploy"  # MLflow admin and Prefect user of govdeploy's own processes
VIEWER_USER = "viewer"  # read-only MLflow user for people

SERVICE_PASSWORD = "mlflow-govdeploy.password"
VIEWER_PASSWORD = "mlflow-viewer.password"
FLASK_SECRET = "mlflow-flask-secret.key"
PREFECT_AUTH = "prefect-auth-string"
MLFLOW_AUTH_CONFIG = "mlflow-basic-auth.ini"
MLFLOW_AUTH_DB = "mlflow-auth.db"
SECRETS = (SERVICE_PASSWORD, VIEWER_PASSWORD, FLASK_SECRET, PREFECT_AUTH)


@dataclass(frozen=True, repr=False)
class ServerCredentials:
    """The secrets of one local stack (never logged; ``repr`` hides them)."""

    service_password: str
    viewer_password: str
    flask_secret: str
    prefect_auth_string: str

    def __repr__(self) -> str:
        return "ServerCredentials(<hidden>)"


def servers_dir(keys_dir: Path) -> Path:
    return keys_dir / "servers"


def write_secret(path: Path, value: str) -> None:
    """Create ``path`` (0600, never over an existing file) holding ``value``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value)


def new_token() -> str:
    """43 random characters of [A-Za-z0-9_-] (no ':' to break the auth string, nothing to quote)."""
    return secrets.token_urlsafe(32)


def _new_secret(name: str) -> str:
    token = new_token()
    return f"{SERVICE_USER}:{token}" if name == PREFECT_AUTH else token


def init_server_credentials(keys_dir: Path) -> list[str]:
    """Create the missing server secrets and (re)write MLflow's auth configuration.

    Return the names created (``servers/<file>``). A new service password retires an existing
    auth database (renamed ``mlflow-auth.db.retired-<time>``): it holds the old admin password,
    which MLflow would keep using.
    """
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = servers_dir(keys_dir)
    folder.mkdir(exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    created = []
    for name in SECRETS:
        if (folder / name).exists():
            continue
        if name == SERVICE_PASSWORD:
            _retire_auth_db(folder)
        write_secret(folder / name, _new_secret(name))
        created.append(f"servers/{name}")
    for name in SECRETS:
        _check(folder / name)
    _write_auth_config(folder, _read(folder / SERVICE_PASSWORD))
    return created


def _check(path: Path) -> None:
    """A secret file that the servers and clients can use: readable, at least 12 characters (MLflow's
    minimum), no whitespace; StackError naming the file and the fix otherwise."""
    try:
        value = _read(path)
    except OSError as exc:
        raise StackError(
            f"server credential {path} cannot be read ({exc}); make it readable by this user"
        ) from None
    user, colon, secret = value.rpartition(":") if path.name == PREFECT_AUTH else ("", "", value)
    if (
        len(secret) < 12
        or any(c.isspace() for c in value)
        or (path.name == PREFECT_AUTH and not (user and colon))
    ):
        raise StackError(
            f"server credential {path} is not usable (empty, too short, or malformed); delete it and "
            "run 'govdeploy keys init' to create a new one ('govdeploy up' then restarts the servers "
            "and every process with it)"
        )


def _retire_auth_db(folder: Path) -> None:
    database = folder / MLFLOW_AUTH_DB
    if database.exists():
        database.rename(folder / f"{MLFLOW_AUTH_DB}.retired-{time.strftime('%Y%m%d-%H%M%S')}")


def auth_config_text(folder: Path, admin_password: str) -> str:
    """MLflow's ``basic_auth.ini``: the service account as admin, people read-only by default."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{folder.resolve() / MLFLOW_AUTH_DB}\n"
        f"admin_username = {SERVICE_USER}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # a verified login is remembered for a minute (keyed by an HMAC of the password under a
        # per-process secret): without it every request pays a PBKDF2 check of the password
        "auth_cache_ttl_seconds = 60\n"
    )


def _write_auth_config(folder: Path, admin_password: str) -> None:
    path = folder / MLFLOW_AUTH_CONFIG
    text = auth_config_text(folder, admin_password)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.unlink(missing_ok=True)
    write_secret(path, text)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def load_server_credentials(keys_dir: Path) -> ServerCredentials | None:
    """The stack's server secrets, or None while ``keys init`` has not created them all."""
    folder = servers_dir(keys_dir)
    try:
        values = [_read(folder / name) for name in SECRETS]
    except OSError:
        return None
    return ServerCredentials(*values)


def client_credentials(keys_dir: Path) -> dict[str, str]:
    """Environment variables with which MLflow and Prefect clients authenticate as govdeploy."""
    found = load_server_credentials(keys_dir)
    if found is None:
        return {}
    return {
        "MLFLOW_TRACKING_USERNAME": SERVICE_USER,
        "MLFLOW_TRACKING_PASSWORD": found.service_password,
        "PREFECT_API_AUTH_STRING": found.prefect_auth_string,
    }


def mlflow_service_auth(keys_dir: Path) -> tuple[str, str] | None:
    """(user, password) of MLflow's service account, None before ``keys init``."""
    found = load_server_credentials(keys_dir)
    return (SERVICE_USER, found.service_password) if found else None


def prefect_auth(keys_dir: Path) -> tuple[str, str] | None:
    """The Prefect auth string as the (user, password) of HTTP basic auth, None before ``keys init``."""
    found = load_server_credentials(keys_dir)
    if found is None:
        return None
    user, _, password = found.prefect_auth_string.partition(":")
    return user, password


def mlflow_server_env(keys_dir: Path) -> dict[str, str]:
    """The MLflow auth app's configuration file and Flask secret (nothing before ``keys init``)."""
    found = load_server_credentials(keys_dir)
    if found is None:
        return {}
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(servers_dir(keys_dir) / MLFLOW_AUTH_CONFIG),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": found.flask_secret,
    }


def prefect_server_env(keys_dir: Path) -> dict[str, str]:
    """The Prefect server's auth string (nothing before ``keys init``)."""
    found = load_server_credentials(keys_dir)
    if found is None:
        return {}
    # the server's own clients (if any talk to it over HTTP) authenticate with the same string
    return {
        "PREFECT_SERVER_API_AUTH_STRING": found.prefect_auth_string,
        "PREFECT_API_AUTH_STRING": found.prefect_auth_string,
    }


def fingerprint(keys_dir: Path) -> str:
    """SHA-256 (16 hex) of the secrets the processes run with (not the viewer's: ``up`` sets it
    through the API), "" without them: a process recorded with another fingerprint runs with other
    (or no) credentials. The secrets are random, so it reveals none."""
    found = load_server_credentials(keys_dir)
    if found is None:
        return ""
    material = "\0".join((found.service_password, found.flask_secret, found.prefect_auth_string))
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def ensure_viewer(keys_dir: Path, tracking_uri: str) -> str:
    """Give MLflow the read-only user for people, with the password in the keys directory."""
    found = load_server_credentials(keys_dir)
    if found is None:
        raise StackError(
            f"server credentials in {servers_dir(keys_dir)} are missing; "
            "create them with 'govdeploy keys init'"
        )
    admin = (SERVICE_USER, found.service_password)
    return mlflow_auth.ensure_user(tracking_uri, admin, VIEWER_USER, found.viewer_password)


def ui_logins(settings: Settings) -> str:
    """Where a person finds the UI credentials (the paths, never the secrets)."""
    folder = servers_dir(settings.keys_dir)
    return (
        f"MLflow UI {settings.mlflow_url}: user '{VIEWER_USER}' (read-only), password in "
        f"{folder / VIEWER_PASSWORD}; Prefect UI {settings.prefect_ui_url}: paste the credential in "
        f"{folder / PREFECT_AUTH}"
    )
