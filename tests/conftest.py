"""Shared fixtures: one real local stack (moto S3, MLflow, Prefect, deployments) per session.

The stack is started by govdeploy's own ``up`` on free loopback ports in a temporary state
directory, and stopped by ``down`` at the end of the session.

A test that starts servers carries the ``integration`` or ``e2e`` marker, so that the fast tier
(``make test-unit``: ``-m "not integration and not e2e"``) stays fast. Enforced here: an unmarked
test that uses the stack fixtures is a collection error, and an unmarked test that starts a server
process (moto, MLflow, Prefect, uvicorn, the flow server, PostgreSQL) or runs uvicorn in-process
fails at that call.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from govdeploy.config.settings import Settings, get_settings

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


SERVER_MARKERS = ("integration", "e2e")
SERVER_FIXTURES = frozenset({"stack", "stack_settings"})
SERVER_PROGRAMS = frozenset({"moto_server", "mlflow", "prefect", "uvicorn", "gunicorn", "postgres", "pg_ctl"})
SERVER_MODULES = frozenset(
    {
        "mlflow",
        "prefect",
        "uvicorn",
        "moto.server",
        "govdeploy.stack.s3_emulator",
        "flows.serve",
        "govdeploy.serving.gateway.run",
    }
)


def _marked(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(name) for name in SERVER_MARKERS)


def starts_a_server(args: Any) -> bool:
    """Whether a command line runs one of the servers the tests may start."""
    argv = [str(a) for a in ([args] if isinstance(args, str | os.PathLike) else args)]
    if len(argv) == 1:
        argv = argv[0].split()
    if argv and os.path.basename(argv[0]) == "setpriv" and "--" in argv:  # run as another user
        argv = argv[argv.index("--") + 1 :]
    programs = {os.path.basename(a) for a in argv[:2]}
    modules = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-m"}
    return bool(programs & SERVER_PROGRAMS or modules & SERVER_MODULES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        i.nodeid for i in items if not _marked(i) and SERVER_FIXTURES & set(getattr(i, "fixturenames", ()))
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use the local stack but carry neither @pytest.mark.integration nor "
            f"@pytest.mark.e2e: {', '.join(unmarked)}; mark them so they stay out of the fast tier"
        )
    # drills that stop a server of the session's stack run after everything else (stable order)
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture(autouse=True)
def _servers_need_a_marker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In an unmarked test, starting a server process (or uvicorn in-process) fails the test."""
    if _marked(request.node):
        return
    popen_init = subprocess.Popen.__init__
    where = request.node.nodeid

    def refuse(what: str) -> None:
        pytest.fail(f"{where} starts a server ({what}) without @pytest.mark.integration or @pytest.mark.e2e")

    def guarded_popen(self: subprocess.Popen[Any], args: Sequence[Any] | str, *rest: Any, **kw: Any) -> None:
        if starts_a_server(args):
            refuse(" ".join(map(str, args)) if not isinstance(args, str) else args)
        popen_init(self, args, *rest, **kw)

    async def guarded_serve(*_: Any, **__: Any) -> None:
        refuse("uvicorn.Server.serve")

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded_popen)
    monkeypatch.setattr("uvicorn.Server.serve", guarded_serve)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of the session's stack, also exported as GOVDEPLOY_* for tasks and subprocesses."""
    patch = pytest.MonkeyPatch()
    values = {
        "GOVDEPLOY_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        "GOVDEPLOY_CONFIG_DIR": str(CONFIG_DIR),
        "GOVDEPLOY_S3_PORT": str(free_port()),
        "GOVDEPLOY_MLFLOW_PORT": str(free_port()),
        "GOVDEPLOY_PREFECT_PORT": str(free_port()),
        "GOVDEPLOY_GATEWAY_PORT": str(free_port()),
        "GOVDEPLOY_USER": "test-trainer",
    }
    for key, value in values.items():
        patch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    patch.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Settings]:
    """The running local stack; Prefect and MLflow clients of this process point at it."""
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from govdeploy.stack.components import client_env
    from govdeploy.stack.manager import down, up

    status = up(stack_settings)
    assert status.all_running, status
    patch = pytest.MonkeyPatch()
    env = client_env(stack_settings)  # with the credentials `up` created in the keys directory
    for key, value in env.items():
        patch.setenv(key, value)
    try:
        with temporary_settings(
            updates={
                PREFECT_API_URL: stack_settings.prefect_api_url,
                PREFECT_API_AUTH_STRING: env["PREFECT_API_AUTH_STRING"],
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            }
        ):
            yield stack_settings
    finally:
        patch.undo()
        final = down(stack_settings)
        assert all(c.state == "stopped" for c in final.components), final


def _writable(directory: Path) -> bool:
    try:
        (directory / ".check").touch()
    except OSError:
        return False
    (directory / ".check").unlink()
    return True


@pytest.fixture
def freeze() -> Iterator[Any]:
    """Make a directory tree unwritable (chmod, or for root ``chattr +i``); thawed after the test."""
    frozen: list[tuple[Path, bool]] = []

    def thaw() -> None:
        for path, immutable in reversed(frozen):
            if immutable:
                subprocess.run(["chattr", "-i", str(path)], check=False)
            path.chmod(0o755)
        frozen.clear()

    def apply(root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        for path in sorted([root, *(p for p in root.rglob("*") if p.is_dir())], reverse=True):
            path.chmod(0o555)
            immutable = False
            if _writable(path):
                done = subprocess.run(["chattr", "+i", str(path)], check=False, capture_output=True)
                immutable = done.returncode == 0
            frozen.append((path, immutable))
            if _writable(path):
                thaw()
                pytest.fail(f"cannot make {path} unwritable here: root needs chattr (Debian: e2fsprogs)")

    apply.thaw = thaw  # type: ignore[attr-defined]
    yield apply
    thaw()
