"""What Linux's /proc tells about other processes: who listens on a TCP port, a process's group,
working directory and command line.

Only processes of the same user (or every process, for root) show their sockets and working
directory; for the others these functions answer "unknown" (None, or no pid).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"  # the TCP state column of /proc/net/tcp{,6}


def listening_inodes(port: int, tables: Iterable[Path] = (PROC / "net/tcp", PROC / "net/tcp6")) -> set[str]:
    """The socket inodes listening on TCP ``port`` (any local address, IPv4 and IPv6)."""
    inodes = set()
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes - {"0"}


def socket_holders(inodes: set[str]) -> list[int]:
    """The pids (sorted) that hold one of these sockets open."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and _holds(entry / "fd", wanted):
            holders.append(int(entry.name))
    return sorted(holders)


def _holds(fd_dir: Path, wanted: set[str]) -> bool:
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd_dir / fd) in wanted:
                return True
        except OSError:
            continue
    return False


def listeners(port: int) -> list[int]:
    """The pids (sorted) of the processes that listen on TCP ``port``; empty when none is visible."""
    inodes = listening_inodes(port)
    return socket_holders(inodes) if inodes else []


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_group(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if fields else None


def started(pid: int) -> int:
    """The kernel's start time of a process (clock ticks since boot), 0 when unknown."""
    fields = _stat(pid)
    return int(fields[19]) if fields else 0


def cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(PROC / str(pid) / "cwd"))
    except OSError:
        return None


def cmdline(pid: int, limit: int = 120) -> str:
    """The command line of a process (cut to ``limit`` characters), or "" when it is unknown."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"
