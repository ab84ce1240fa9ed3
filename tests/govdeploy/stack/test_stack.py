"""The local stack's process handling, without starting the real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from govdeploy.config.settings import Settings
from govdeploy.errors import StackError
from govdeploy.polling import poll
from govdeploy.stack import components, manager, process
from tests.conftest import free_port


def test_status_of_a_fresh_state_dir_is_all_stopped(tmp_path: Path) -> None:
    status = manager.status(Settings(state_dir=tmp_path, s3_port=free_port()))
    assert [c.state for c in status.components] == ["stopped"] * 5
    assert [c.name for c in status.components] == ["s3", "mlflow", "prefect", "deployments", "gateway"]


def test_port_in_use_names_the_component_and_the_fix(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = Settings(
            state_dir=tmp_path, s3_port=port, mlflow_port=free_port(), prefect_port=free_port()
        )
        with pytest.raises(
            StackError,
            match=rf"s3: port {port} on 127.0.0.1 is already in use by pid {os.getpid()} \(.*GOVDEPLOY_S3_PORT",
        ):
            manager.up(settings)
        s3 = manager.status(settings).components[0]
        assert s3.detail.startswith(f"port {port} is held by pid {os.getpid()} (")
    assert all(c.state == "stopped" for c in manager.status(settings).components)


def test_a_server_that_dies_at_start_names_its_log(tmp_path: Path) -> None:
    log = tmp_path / "broken.log"
    child = process.spawn(
        "broken",
        [sys.executable, "-c", "print('cannot open database'); raise SystemExit(3)"],
        {},
        log,
        tmp_path,
    )
    with pytest.raises(StackError) as caught:
        process.wait_healthy("broken", child, lambda: False, timeout=20, log=log)
    message = str(caught.value)
    assert "broken failed to start (exit code 3)" in message
    assert str(log) in message
    assert "cannot open database" in message


def test_a_server_that_never_gets_healthy_times_out(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    child = process.spawn("slow", ["sleep", "30"], {}, log, tmp_path)
    try:
        with pytest.raises(StackError, match=rf"slow did not become healthy within 1 s; see its log {log}"):
            process.wait_healthy("slow", child, lambda: False, timeout=1, log=log)
    finally:
        child.kill()
        child.wait()


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    child = process.spawn("group", [sys.executable, "-c", script], {}, tmp_path / "g.log", tmp_path)
    poll(lambda: len(process.group_members(child.pid)) >= 2, timeout=10, interval=0.05)
    assert len(process.group_members(child.pid)) == 2, "the script should have started its sleep child"
    ticks = process.start_ticks(child.pid)
    assert ticks is not None
    record = process.ProcessRecord(
        name="group", pid=child.pid, start_ticks=ticks, port=None, url="", log="", command=[]
    )
    assert process.is_running(record)
    assert process.stop(record, grace=5)
    assert not process.is_running(record)
    # zombies (exited, waiting for a reaper that a container's init may never be) do not count
    listing = subprocess.run(["ps", "-e", "-o", "pgid=,stat="], capture_output=True, text=True).stdout
    rows = [line.split() for line in listing.splitlines()]
    assert [row for row in rows if row[0] == str(child.pid) and "Z" not in row[1]] == []
    assert not process.stop(record)


def test_stop_kills_a_group_member_that_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    )
    script = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {stubborn!r}]); time.sleep(60)"
    child = process.spawn("group", [sys.executable, "-c", script], {}, tmp_path / "g.log", tmp_path)
    poll(ready.exists, timeout=10, interval=0.05)
    assert ready.exists(), "the group member should have started and ignored SIGTERM"
    ticks = process.start_ticks(child.pid)
    assert ticks is not None
    record = process.ProcessRecord(
        name="group", pid=child.pid, start_ticks=ticks, port=None, url="", log="", command=[]
    )
    assert process.stop(record, grace=1)
    assert process.group_members(child.pid) == []


def test_the_code_digest_follows_sources_and_configuration_only(tmp_path: Path) -> None:
    for package in components.CODE_PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("VALUE = 1\n")
    config = tmp_path / "config"
    config.mkdir()
    (config / "policy.yaml").write_text("drift: {}\n")
    first = components.code_digest(config, tmp_path)
    (tmp_path / "flows" / "__pycache__").mkdir()
    (tmp_path / "flows" / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    assert components.code_digest(config, tmp_path) == first
    (tmp_path / "tasks" / "__init__.py").write_text("VALUE = 2\n")
    second = components.code_digest(config, tmp_path)
    assert second != first
    (config / "policy.yaml").write_text("drift: {min_rows: 10}\n")
    assert components.code_digest(config, tmp_path) != second


def test_up_restarts_a_served_process_that_runs_older_code(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    gateway = {c.name: c for c in components.all_components(settings)}["gateway"]
    assert gateway.code == components.code_digest(settings.config_dir)
    assert components.s3(settings).code == ""  # not govdeploy's code: never restarted for it
    child = process.spawn("gateway", ["sleep", "60"], {}, tmp_path / "g.log", tmp_path)
    ticks = process.start_ticks(child.pid)
    assert ticks is not None
    path = tmp_path / "run" / "gateway.json"
    record = process.ProcessRecord(
        name="gateway", pid=child.pid, start_ticks=ticks, port=None, url="", log="", command=[], code="old"
    )
    process.write_record(path, record)
    assert manager._outdated(settings, gateway)
    process.write_record(path, record.model_copy(update={"code": gateway.code}))
    assert not manager._outdated(settings, gateway)
    assert manager._stop_component(settings, gateway) and not process.is_running(record)
    child.wait()
