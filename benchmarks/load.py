"""What the serving benchmark measures with: wrk, a server's process group and the CPU it uses."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from govdeploy.polling import poll

WRK_MISSING = "wrk is not installed: apt-get update && apt-get install -y wrk (Debian/Ubuntu)"


@dataclass
class Load:
    """One wrk run against one peer, and the CPU its processes used meanwhile."""

    rps: float
    p50: float  # ms
    p99: float  # ms
    requests: float
    errors: float
    cpu_seconds: float

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / max(1.0, self.requests)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def server(
    command: list[str], env: dict[str, str], ready: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server in a process group of its own, answering 200 at ``ready``; SIGTERM to its group after."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if not poll(lambda: proc.poll() is None and _answers(ready), timeout=180, interval=0.5):
            raise SystemExit(f"{command[0]} did not answer at {ready}; see {log}:\n{log.read_text()[-2000:]}")
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> int | None:
    """SIGTERM the process group, then SIGKILL what is left after ``timeout``; the leader's exit code."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + timeout
    while _members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc.returncode


def _members(group: int) -> list[Path]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(stat)
    return found


def group_cpu(group: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group ``group``."""
    ticks = 0
    for stat in _members(group):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(
    group: int, url: str, body: dict[str, object], headers: dict[str, str], seconds: int, connections: int
) -> Load:
    """wrk -t2 with ``connections`` connections for ``seconds``, POSTing ``body``; with the CPU the
    server's process group used meanwhile."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    all_headers = {"Content-Type": "application/json", **headers}
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in all_headers.items()]
    script.write_text("\n".join(lines) + "\n")
    before = group_cpu(group)
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = group_cpu(group) - before
    script.unlink()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", out)),
        p50=_ms(_find(r"50%\s+([\d.]+\w+)", out)),
        p99=_ms(_find(r"99%\s+([\d.]+\w+)", out)),
        requests=float(_find(r"(\d+) requests in", out)),
        errors=float(errors.group(1)) if errors else 0.0,
        cpu_seconds=cpu,
    )


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"wrk output lacks {pattern!r}:\n{text}")
    return match.group(1)


def _ms(value: str) -> float:
    number, unit = float(_find(r"([\d.]+)", value)), re.sub(r"[\d.]+", "", value)
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
