"""What runs of a component, seen through /proc: the listener on its port, an exited launcher's
orphans, a port held by another program. Plain Python processes stand in for the servers."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from govdeploy.config.settings import Settings
from govdeploy.errors import StackError
from govdeploy.polling import poll
from govdeploy.stack import components, credentials, manager, process, procfs, supervision
from tests.conftest import free_port

# A launcher that starts a listening server as its child, prints nothing and waits; the child
# writes the ready file once it listens.
SERVER = (
    "import pathlib, socket, sys, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "pathlib.Path(sys.argv[2]).touch(); time.sleep(120)\n"
)
LAUNCHER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2], sys.argv[3]]); time.sleep(120)\n"
)


@dataclasses.dataclass
class Launched:
    launcher: int
    record: process.ProcessRecord


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(state_dir=tmp_path, s3_port=free_port(), mlflow_port=free_port())
    yield settings
    for component in (components.s3(settings), components.mlflow(settings)):
        manager._stop_component(settings, component)


def launch(settings: Settings, name: str, port: int, cwd: Path | None = None) -> Launched:
    """Start the launcher and its listening child the way ``up`` starts a component; record it."""
    ready = settings.state_dir / f"{name}.ready"
    command = [sys.executable, "-c", LAUNCHER, SERVER, str(port), str(ready)]
    log = settings.state_dir / "logs" / f"{name}.log"
    child = process.spawn(name, command, {}, log, cwd or settings.state_dir)
    assert poll(ready.exists, timeout=20, interval=0.05), "the stand-in server should listen"
    record = process.ProcessRecord(
        name=name,
        pid=child.pid,
        start_ticks=process.start_ticks(child.pid) or 0,
        port=port,
        url="",
        log=str(log),
        command=command,
    )
    process.write_record(settings.state_dir / "run" / f"{name}.json", record)
    return Launched(child.pid, record)


def kill_launcher(launched: Launched) -> None:
    os.kill(launched.launcher, signal.SIGKILL)
    os.waitpid(launched.launcher, 0)  # our child: reap it, as init would reap an orphan's parent


def stand_in(component: components.Component) -> components.Component:
    """The component with a health check that holds as long as something listens on its port."""
    port = component.port
    assert port is not None
    return dataclasses.replace(component, healthy=lambda: bool(procfs.listeners(port)))


def test_listeners_of_a_port_include_this_process() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert os.getpid() in procfs.listeners(port)
    assert os.getpid() not in procfs.listeners(port)


def test_only_listening_sockets_of_the_port_count(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    )
    rows = [
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1",
        "   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1",
        "   2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1",
    ]
    table.write_text(header + "\n".join(rows) + "\n")
    six = tmp_path / "tcp6"
    six.write_text(
        header + "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000     0        0 444 1\n"
    )
    assert procfs.listening_inodes(8080, (table, six, tmp_path / "missing")) == {"111", "444"}


def test_status_follows_the_server_when_its_launcher_dies_and_down_stops_it(settings: Settings) -> None:
    s3 = stand_in(components.s3(settings))
    launched = launch(settings, "s3", settings.s3_port)
    server = procfs.listeners(settings.s3_port)[0]
    assert server != launched.launcher
    running = manager.component_status(settings, s3)
    assert (running.state, running.pid, running.detail) == ("running", server, "")

    kill_launcher(launched)
    orphaned = manager.component_status(settings, s3)
    assert (orphaned.state, orphaned.pid) == ("running", server)
    assert orphaned.detail == f"orphaned: launcher pid {launched.launcher} exited"

    actions: dict[str, str] = {}
    assert manager._keep_running(settings, s3, actions, lambda _: None)  # adopted, not "port in use"
    assert actions["s3"] == "already running, adopted"

    assert manager._stop_component(settings, s3)
    assert procfs.listeners(settings.s3_port) == []
    assert process.group_members(launched.launcher) == []
    assert manager.component_status(settings, s3).state == "stopped"


def test_a_server_without_a_pid_record_is_adopted_when_nothing_needs_checking(settings: Settings) -> None:
    s3 = stand_in(components.s3(settings))
    launched = launch(settings, "s3", settings.s3_port)
    (settings.state_dir / "run" / "s3.json").unlink()
    server = procfs.listeners(settings.s3_port)[0]
    found = manager.component_status(settings, s3)
    assert (found.state, found.pid, found.detail) == ("running", server, f"pid {server} has no pid record")

    actions: dict[str, str] = {}
    assert manager._keep_running(settings, s3, actions, lambda _: None)
    assert actions["s3"] == "already running, adopted"
    record = process.read_record(settings.state_dir / "run" / "s3.json")
    assert record is not None and record.pid == launched.launcher  # its process group
    assert manager.component_status(settings, s3).detail == ""


def test_a_server_with_a_wrong_pid_record_is_replaced_when_its_credentials_matter(settings: Settings) -> None:
    credentials.init_server_credentials(settings.keys_dir)
    mlflow = stand_in(components.mlflow(settings))
    assert mlflow.credentials  # what the record of an untracked server cannot vouch for
    launched = launch(settings, "mlflow", settings.mlflow_port)
    path = settings.state_dir / "run" / "mlflow.json"
    process.write_record(path, launched.record.model_copy(update={"pid": 1, "start_ticks": -1}))
    server = procfs.listeners(settings.mlflow_port)[0]
    assert (
        manager.component_status(settings, mlflow).detail
        == f"pid {server} is not the recorded process (pid 1)"
    )
    reason = manager._restart_reason(settings, mlflow)
    assert reason is not None and reason.startswith("runs outside its pid record")

    actions: dict[str, str] = {}
    assert not manager._keep_running(settings, mlflow, actions, lambda _: None)  # stopped for a restart
    assert actions["mlflow"].startswith("restarted: runs outside its pid record")
    assert procfs.listeners(settings.mlflow_port) == []
    assert process.group_members(launched.launcher) == []


def test_a_listener_outside_the_state_directory_is_named_not_stopped(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    launched = launch(settings, "s3", settings.s3_port, cwd=elsewhere)
    (settings.state_dir / "run" / "s3.json").unlink()
    server = procfs.listeners(settings.s3_port)[0]
    s3 = stand_in(components.s3(settings))
    seen = manager.component_status(settings, s3)
    assert (seen.state, seen.pid) == ("stopped", None)
    assert seen.detail.startswith(f"port {settings.s3_port} is held by pid {server} (")
    assert seen.detail.endswith(f"working directory {elsewhere}), not by this stack")
    assert not manager._stop_component(settings, s3)
    with pytest.raises(StackError) as caught:
        manager._launch(settings, s3)
    message = str(caught.value)
    assert f"s3: port {settings.s3_port} on 127.0.0.1 is already in use by pid {server} (" in message
    assert f"working directory {elsewhere}" in message and "GOVDEPLOY_S3_PORT" in message
    assert procfs.listeners(settings.s3_port) == [server]  # left alone
    assert process.stop_groups({launched.launcher}, grace=5)


def test_this_process_is_never_taken_for_a_server_nor_signalled() -> None:
    assert process.stop_groups({os.getpgrp()}, grace=0.1)  # had it signalled, this test would be dead
    assert procfs.cwd(os.getpid()) == Path.cwd()
    assert not supervision.ours(os.getpid(), Path.cwd())
