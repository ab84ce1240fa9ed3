"""The local stack's process handling, without starting the real servers."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from govdeploy.errors import StackError
from govdeploy.settings import Settings
from govdeploy.stack import manager, process
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
            StackError, match=rf"s3: port {port} on 127.0.0.1 is already in use.*GOVDEPLOY_S3_PORT"
        ):
            manager.up(settings)
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
    ticks = process.start_ticks(child.pid)
    assert ticks is not None
    record = process.ProcessRecord(
        name="group", pid=child.pid, start_ticks=ticks, port=None, url="", log="", command=[]
    )
    assert process.is_running(record)
    assert process.stop(record, grace=5)
    assert not process.is_running(record)
    leftover = subprocess.run(["pgrep", "-g", str(child.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
    assert not process.stop(record)
