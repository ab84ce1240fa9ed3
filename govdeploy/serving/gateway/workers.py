"""Several worker processes of one gateway (``GOVDEPLOY_GATEWAY_WORKERS``), and what they share.

``python -m govdeploy.serving.gateway.run`` starts them (uvicorn's workers, sharing the listening
socket). Before they start it makes the gateway's run directory ``<state>/gateway/run-<pid>/`` (and
removes those of launchers that are gone): its ``metrics/`` is ``PROMETHEUS_MULTIPROC_DIR``, where
every worker's counters go so that ``/metrics`` adds them up, and ``siblings/`` holds what
``Siblings`` passes between the workers. Each worker builds its own gateway (serving state, I/O
log writer, micro-batchers) and admits 1/(replicas * workers) of every rate limit.

``Siblings``: the serving state is refreshed by every worker on its own (every ``refresh_seconds``),
and at once when one of them applied a reload, kill or revive: it writes a refresh request (a
number), every worker (itself included) refreshes after reading it and confirms that number, and
the one that asked waits until every worker confirmed. A kill that could not be written to the
serving record (a local kill) goes to the others through the same directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from govdeploy.config.settings import Settings
from govdeploy.errors import ConfigError

log = logging.getLogger("govdeploy.gateway")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
RUN_PREFIX = "run-"
CONFIRM_SECONDS = 30.0  # how long a reload, kill or revive waits for the other workers
STEP_SECONDS = 0.05  # how often a worker looks for a refresh request


def run_root(settings: Settings) -> Path:
    return settings.state_dir / "gateway"


def prepare_run(settings: Settings, pid: int) -> Path:
    """The run directory of the launcher ``pid``, empty, with ``metrics/`` and ``siblings/``; run
    directories of launchers that no longer run are removed."""
    root = run_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(f"{RUN_PREFIX}*"):
        number = old.name.removeprefix(RUN_PREFIX)
        if number.isdigit() and (int(number) == pid or not _running(int(number))):
            shutil.rmtree(old, ignore_errors=True)
    run = root / f"{RUN_PREFIX}{pid}"
    (run / "metrics").mkdir(parents=True)
    (run / "siblings").mkdir()
    return run


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def worker_processes(settings: Settings) -> int:
    """How many worker processes this gateway runs (this one among them), as started.

    A worker started by the launcher finds ``PROMETHEUS_MULTIPROC_DIR`` set; one started by uvicorn
    (``--workers``, ``--reload``) without it would count and limit alone: refused. A single process
    started another way (``uvicorn ...main:app``) runs as one, whatever the setting says."""
    spawned = multiprocessing.parent_process() is not None
    if not os.environ.get(MULTIPROC_ENV):
        if spawned:
            raise ConfigError(
                "this gateway process was started by another (uvicorn --workers or --reload) without "
                f"{MULTIPROC_ENV}: its metrics and rate limits would count its own requests only; run "
                "several workers with 'python -m govdeploy.serving.gateway.run' and "
                "GOVDEPLOY_GATEWAY_WORKERS=N (govdeploy up does)"
            )
        if settings.gateway_workers > 1:
            log.warning(
                "GOVDEPLOY_GATEWAY_WORKERS=%d, but this gateway runs as one process: start it with "
                "'python -m govdeploy.serving.gateway.run' for several",
                settings.gateway_workers,
            )
        return 1
    return settings.gateway_workers if spawned else 1


def siblings_dir() -> Path | None:
    """The siblings directory of this worker's launcher, or None when it runs alone."""
    metrics = os.environ.get(MULTIPROC_ENV)
    return Path(metrics).parent / "siblings" if metrics else None


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text(encoding="utf-8") or 0)
    except (OSError, ValueError):
        return 0


class Siblings:
    """The worker processes of one gateway: refresh requests, their confirmations, local kills."""

    def __init__(
        self,
        directory: Path,
        workers: int,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory, self.workers, self.clock = directory, workers, clock
        self.name = name or str(os.getpid())  # of this worker, in its confirmations
        self.request_path = directory / "refresh-request"
        self.kills_path = directory / "local-kills.json"

    def requested(self) -> int:
        """The newest refresh request (0: none yet)."""
        return _read_int(self.request_path)

    def request(self) -> int:
        """Ask every worker to refresh now; the request's number (increasing)."""
        with self._locked():
            number = max(time.time_ns(), self.requested() + 1)
            _write_atomic(self.request_path, str(number))
        return number

    def confirm(self, number: int) -> None:
        """This worker refreshed after reading request ``number``."""
        _write_atomic(self.directory / f"applied-{self.name}", str(number))

    def confirmed(self, number: int) -> int:
        """How many workers refreshed after request ``number`` (or a later one)."""
        return sum(_read_int(path) >= number for path in self.directory.glob("applied-*"))

    async def everywhere(self, timeout: float = CONFIRM_SECONDS) -> str | None:
        """Request a refresh and wait (on the event loop: no thread is held) until every worker
        confirmed it: None, or what is missing."""
        number = self.request()
        deadline = self.clock() + timeout
        while (done := self.confirmed(number)) < self.workers:
            if self.clock() >= deadline:
                return (
                    f"{done} of {self.workers} worker processes confirmed the change within {timeout:g} s; "
                    "the others apply it at their next refresh"
                )
            await asyncio.sleep(STEP_SECONDS / 2)
        return None

    def local_kills(self) -> dict[str, str]:
        """The kills of this gateway that are not in the serving record, by model."""
        try:
            found = json.loads(self.kills_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def set_local_kill(self, model: str, reason: str | None) -> None:
        """Hold (``reason``) or end (None) a local kill of ``model`` on every worker."""
        with self._locked():
            kills = self.local_kills()
            if kills.get(model) == reason:
                return
            if reason is None:
                kills.pop(model, None)
            else:
                kills[model] = reason
            _write_atomic(self.kills_path, json.dumps(kills))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
