"""Detached server processes: start with a log file, record, health-wait, stop.

A started process leads its own session (process group), so stopping it stops its children too.
Its record (pid, start time, port, URL, log) is a JSON file in ``<state>/run/``; the start time
guards against a recycled pid.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel

from govdeploy.errors import StackError
from govdeploy.polling import poll


class ProcessRecord(BaseModel):
    name: str
    pid: int
    start_ticks: int
    port: int | None
    url: str
    log: str
    command: list[str]
    code: str = ""  # the component's code digest when it started (see components.code_digest)
    credentials: str = ""  # fingerprint of the server credentials it started with (credentials.py)


def start_ticks(pid: int) -> int | None:
    """The kernel's start time of a process, or None if it does not exist (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited
        return None
    return int(fields[19])


def is_running(record: ProcessRecord) -> bool:
    return start_ticks(record.pid) == record.start_ticks


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # like the servers themselves: a port in TIME_WAIT after a stop is free, a listener is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def spawn(
    name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start a detached process whose stdout and stderr go to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(
            f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(command)}\n".encode()
        )
        try:
            return subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(f"{name} could not be started ({command[0]}): {exc}") from exc


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_healthy(
    name: str,
    process: subprocess.Popen[bytes],
    healthy: Callable[[], bool],
    timeout: float,
    log: Path,
) -> None:
    """Poll ``healthy`` until it answers True; raise StackError if the process dies or times out."""

    def started() -> bool:
        code = process.poll()
        if code is not None:
            raise StackError(
                f"{name} failed to start (exit code {code}); see its log {log}:\n{log_tail(log)}"
            )
        return healthy()

    if not poll(started, timeout=timeout, interval=0.3):
        raise StackError(f"{name} did not become healthy within {timeout:.0f} s; see its log {log}")


def stop(record: ProcessRecord, grace: float = 20.0) -> bool:
    """SIGTERM the process group, then SIGKILL after ``grace`` seconds; True if it was running.

    Returns once the leader and every other live member of its group are gone, so no server's
    child outlives a stop (zombies waiting for a reaper are gone already).
    """
    if not is_running(record):
        return False
    stop_groups({record.pid}, grace)
    return True


def stop_groups(groups: Iterable[int], grace: float = 20.0, first: int = signal.SIGTERM) -> bool:
    """Send ``first`` (SIGTERM) to every process group, then SIGKILL what is left after ``grace``
    seconds.

    True once no live member of any group is left; False if one survived SIGKILL (a process of
    another user, or one stuck in the kernel). This process's own group is never signalled.
    """
    targets = sorted(set(groups) - {os.getpgrp()})
    for sig, wait in ((first, grace), (signal.SIGKILL, 5.0)):
        for pgid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        if _wait_gone(targets, wait):
            return True
    return False


def _wait_gone(groups: list[int], seconds: float) -> bool:
    """Wait until every live member of the groups (their leaders too) has exited; False on timeout."""

    def gone() -> bool:
        for pgid in groups:
            _reap(pgid)
        return not any(group_members(pgid) for pgid in groups)

    return poll(gone, timeout=seconds, interval=0.1)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid`` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (it would linger as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def write_record(path: Path, record: ProcessRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.model_dump_json(indent=2))
    tmp.replace(path)


def read_record(path: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
