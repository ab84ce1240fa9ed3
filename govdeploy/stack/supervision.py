"""What of a component really runs, whatever its pid record says.

``up`` starts each component as the leader of a new process group, in the state directory, and
records that leader (``process.ProcessRecord``). The server is not always the leader: ``mlflow
server`` and ``prefect server start`` run their web server as a child, and a child outlives a
leader killed alone. So a component runs when its recorded leader runs, when a process of this
stack (its working directory is the state directory or inside it) listens on the component's port, or when a
process of this stack is left of the recorded group. ``status`` reports that server's pid,
``down`` stops it, ``up`` adopts or replaces it. A port held by any other process is foreign:
``up`` names that process instead of failing on a busy port.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from govdeploy.stack import procfs
from govdeploy.stack.process import ProcessRecord, group_members, is_running, port_in_use


@dataclass(frozen=True)
class Presence:
    """The running processes of one component."""

    pid: int  # the server: the oldest process of this stack on the port, else the leader
    groups: frozenset[int]  # the process groups that stopping the component signals
    tracked: bool  # the pid record describes these processes (its leader or its group runs)
    note: str = ""  # how the record is off: an exited launcher, or no record of this server


def ours(pid: int, state_dir: Path) -> bool:
    """A process of this stack: ``up`` starts every component in the state directory (PostgreSQL
    then moves into its cluster directory, inside it)."""
    if pid == os.getpid():
        return False
    where = procfs.cwd(pid)
    return where is not None and (where == state_dir or state_dir in where.parents)


def _oldest(pids: list[int]) -> int | None:
    return min(pids, key=lambda pid: (procfs.started(pid), pid)) if pids else None


def find(state_dir: Path, record: ProcessRecord | None, port: int | None) -> Presence | None:
    """The processes of the component recorded in ``record`` that listens on ``port``, or None."""
    leader = record is not None and is_running(record)
    left = [p for p in group_members(record.pid) if ours(p, state_dir)] if record and not leader else []
    listening = [p for p in procfs.listeners(port) if ours(p, state_dir)] if port else []
    server = _oldest(listening) or (record.pid if record and leader else None) or _oldest(left)
    if server is None:
        return None
    groups = {record.pid} if record and (leader or left) else set()
    groups |= {g for g in map(procfs.process_group, listening) if g is not None}
    tracked = record is not None and (leader or procfs.process_group(server) == record.pid)
    return Presence(
        pid=server,
        groups=frozenset(groups - {os.getpgrp()}),
        tracked=tracked,
        note=_note(record, leader, tracked, server),
    )


def _note(record: ProcessRecord | None, leader: bool, tracked: bool, server: int) -> str:
    if record is None:
        return f"pid {server} has no pid record"
    if not tracked:
        return f"pid {server} is not the recorded process (pid {record.pid})"
    if not leader:
        return f"orphaned: launcher pid {record.pid} exited"
    return ""


def foreign_note(host: str, port: int | None) -> str:
    """For a component found not running: who else holds its port ("" when it is free)."""
    if port is None or not port_in_use(host, port):
        return ""
    return f"port {port} is held by {port_holder(port)}, not by this stack"


def port_holder(port: int) -> str:
    """Who listens on ``port``: its pid, command line and working directory, as far as visible."""
    pids = procfs.listeners(port)
    if not pids:
        return "a process this user cannot inspect"
    pid = _oldest(pids) or pids[0]
    return f"pid {pid} ({procfs.cmdline(pid) or 'command unknown'}; working directory {procfs.cwd(pid)})"


def adopted_record(found: Presence, name: str, port: int | None, url: str, log: str) -> ProcessRecord:
    """A pid record for a server found outside its record: its process group, no code or
    credentials (so a component that needs them is restarted rather than adopted)."""
    group = procfs.process_group(found.pid) or found.pid
    return ProcessRecord(
        name=name,
        pid=group,
        start_ticks=procfs.started(group),
        port=port,
        url=url,
        log=log,
        command=procfs.cmdline(found.pid, limit=1000).split(),
    )
