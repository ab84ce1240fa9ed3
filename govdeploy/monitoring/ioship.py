"""Shipping of the I/O log's batches to the bucket, and the alarms the I/O log raises.

``ShipBacklog`` holds the batches a writer (``govdeploy.monitoring.iolog``) wrote locally and the
bucket does not have yet. A batch gets a ``.unshipped`` marker beside it before it is written (so a
crash cannot leave a batch that nobody ships) and is uploaded, oldest first, by the backlog's own
thread, retried with backoff until the bucket has it: the same sealed bytes under the same key. A
new writer on the same directory ships the batches its predecessors left behind.

``Alarms`` raises each problem once (logged as an error and handed to an ``Alert``) until it is
cleared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from govdeploy.monitoring.iofiles import discard, make_dir
from govdeploy.monitoring.iorecords import BATCH_SUFFIX, batch_time

logger = logging.getLogger(__name__)

UNSHIPPED_SUFFIX = ".unshipped"  # marker beside a batch the bucket does not have yet
# a younger marker without its batch may be of a batch another writer on the spool writes now
MARKER_GRACE_SECONDS = 60.0
Alert = Callable[[str], None]


def _marker(path: Path) -> Path:
    return path.with_name(path.name + UNSHIPPED_SUFFIX)


class Alarms:
    """Problems raised once each (logged as errors and handed to ``alert``) until cleared."""

    def __init__(self, alert: Alert | None) -> None:
        self.alert = alert
        self.raised: set[str] = set()

    def raise_once(self, key: str, message: str) -> None:
        if key in self.raised:
            return
        self.raised.add(key)
        logger.error("%s", message)
        if self.alert is not None:
            try:
                self.alert(message)
            except Exception:  # an alert channel's failure must not stop the I/O log
                logger.exception("could not alert: %s", message)

    def clear(self, key: str, message: str) -> None:
        if key in self.raised:
            self.raised.discard(key)
            logger.warning("%s", message)


class ShipBacklog:
    """Batches written locally and not yet in the bucket: durable on disk, shipped by one thread.

    ``mark`` a batch before writing it, ``add`` it once written (or ``unmark`` it if the write
    failed). Failed uploads are retried, oldest first, after ``retry_min`` seconds, doubling up to
    ``retry_max``; a restart finds the markers (``load``) and ships those batches again.
    """

    def __init__(
        self,
        directory: Path,
        shipper: Callable[[Path], None],
        alarms: Alarms,
        *,
        retry_min: float = 0.5,
        retry_max: float = 60.0,
    ) -> None:
        self.directory, self.shipper, self.alarms = directory, shipper, alarms
        self.retry_min, self.retry_max = retry_min, retry_max
        self._paths: deque[Path] = deque()
        self._known: set[Path] = set()
        self._cond = threading.Condition()
        self._ship_lock = threading.Lock()
        self._delay = retry_min
        self._next_try = 0.0
        self._stopping = False
        self._loaded = False
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.shipped = 0

    @property
    def size(self) -> int:
        """Number of batches waiting to be shipped."""
        return len(self._paths)

    def oldest_age(self) -> float:
        """Seconds since the oldest waiting batch was written (0 when none waits)."""
        with self._cond:
            oldest = self._paths[0] if self._paths else None
        if oldest is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - batch_time(oldest.parent.name, oldest.name)).total_seconds())

    def load(self) -> None:
        """Queue the batches earlier writers left unshipped (once); drop markers of batches never written
        (a minute old: writers of other processes may share the spool, and ship what they wrote).

        Not while a batch of this writer is being written (its marker is there before its batch)."""
        with self._cond:
            if self._loaded:
                return
            self._loaded = True
        try:
            found = sorted(self.directory.glob(f"*/*{BATCH_SUFFIX}{UNSHIPPED_SUFFIX}"), key=_order)
        except OSError as exc:
            logger.error("could not list the unshipped I/O log batches of %s: %s", self.directory, exc)
            return
        paths = [marker.with_name(marker.name.removesuffix(UNSHIPPED_SUFFIX)) for marker in found]
        for path in paths:
            if not path.exists() and _named_before(path, MARKER_GRACE_SECONDS):
                discard(_marker(path))
        waiting = [path for path in paths if path.exists()]
        with self._cond:
            fresh = [path for path in waiting if path not in self._known]
            self._paths.extendleft(reversed(fresh))
            self._known.update(fresh)
            self._cond.notify_all()
        if fresh:
            logger.warning(
                "%d I/O log batches of earlier writers wait to be shipped from %s", len(fresh), fresh[0]
            )

    @staticmethod
    def mark(path: Path) -> None:
        """Leave the durable marker of ``path`` before the batch is written (made durable with it)."""
        make_dir(path.parent)
        _marker(path).touch()

    @staticmethod
    def unmark(path: Path) -> None:
        discard(_marker(path))

    def add(self, path: Path) -> None:
        """Queue a durably written batch for shipping, after those that wait already."""
        with self._cond:
            if path not in self._known:
                self._known.add(path)
                self._paths.append(path)
            self._cond.notify_all()

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="govdeploy-iolog-ship", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop the thread, try once more to ship what waits; what is left waits on disk for a restart."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self.ship(ignore_backoff=True)
        if self._paths:
            logger.error(
                "%d I/O log batches of %s were not shipped, from %s on (%s): they stay on local disk and "
                "are shipped when the gateway starts again; until then drift windows lack their records",
                self.size,
                self.directory,
                self._paths[0],
                self.last_error,
            )

    def ship(self, *, ignore_backoff: bool = False) -> None:
        """Ship the waiting batches oldest first; a failure backs off and leaves the rest waiting."""
        with self._ship_lock:
            while (path := self._head(ignore_backoff)) is not None:
                if not self._ship_one(path):
                    return

    def _head(self, ignore_backoff: bool) -> Path | None:
        with self._cond:
            if not self._paths or not (ignore_backoff or time.monotonic() >= self._next_try):
                return None
            return self._paths[0]

    def _ship_one(self, path: Path) -> bool:
        if path.exists():
            try:
                self.shipper(path)
            except Exception as exc:
                self._failed(path, exc)
                return False
        else:
            logger.error("I/O log batch %s vanished from local disk before it was shipped", path)
        self.unmark(path)
        with self._cond:
            self._paths.popleft()
            self._known.discard(path)
            self._delay, self._next_try, self.last_error = self.retry_min, 0.0, None
            self.shipped += 1
        self.alarms.clear("ship", f"I/O log batches are shipped again from {self.directory}")
        return True

    def _failed(self, path: Path, exc: Exception) -> None:
        with self._cond:
            delay = self._delay
            self._next_try = time.monotonic() + delay
            self._delay = min(self.retry_max, delay * 2)
            self.last_error = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "could not ship I/O log batch %s (%s); %d batches wait on local disk, retried in %.1fs",
            path,
            exc,
            self.size,
            delay,
        )
        self.alarms.raise_once(
            "ship",
            f"I/O log batches cannot be shipped to the bucket ({self.last_error}); they wait on local "
            f"disk in {self.directory} and are retried until the bucket takes them",
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._due():
                    self._cond.wait(self._wait())
                if self._stopping:
                    return
            try:
                self.ship()
            except Exception:  # the thread never dies: the backlog is retried
                logger.exception("shipping I/O log batches crashed; retrying")
                with self._cond:
                    self._next_try = time.monotonic() + self.retry_max

    def _due(self) -> bool:
        return bool(self._paths) and time.monotonic() >= self._next_try

    def _wait(self) -> float | None:
        return max(0.01, self._next_try - time.monotonic()) if self._paths else None


def _named_before(path: Path, seconds: float) -> bool:
    """Whether the batch ``path`` was named (by the time in its name) over ``seconds`` ago."""
    try:
        written = batch_time(path.parent.name, path.name)
    except ValueError:
        return True
    return (datetime.now(UTC) - written).total_seconds() > seconds


def _order(path: Path) -> tuple[str, str]:
    return path.parent.name, path.name
