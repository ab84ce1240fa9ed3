"""Durable, batched, encrypted I/O logging of the model-serving gateway.

Request handlers ``submit`` one ``IORecord`` per request; the call only appends to an in-memory
queue. One background thread writes the queue in batches: one file per batch, sealed for its bucket
key (``govdeploy.monitoring.iorecords``) and written atomically (``.partial``, fsync,
``os.replace``, fsync of the directory). A batch that cannot be written goes back to the front of
the queue and is retried under the same sequence number; ``close`` writes what is still queued.
Records written therefore equal records submitted, under load and on shutdown.

Every writer (one per gateway process; a restart is a new writer) has a random id of 16 hex
characters and numbers its batches 1, 2, 3, ... Shipping keeps the writer's order: a batch that
could not be shipped is retried, oldest first, after the next write and on ``close``.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from govdeploy.errors import GovdeployError
from govdeploy.monitoring.iorecords import (
    PARTIAL_SUFFIX,
    WRITER_HEX,
    IORecord,
    batch_key,
    batch_name,
    encode_batch,
)

logger = logging.getLogger(__name__)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    """Remove what a failed write may have left at ``path``; a failure to do so only logs."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("could not remove %s after its write failed (%s)", path, exc)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably: ``.partial``, fsync, ``os.replace``."""
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    if created:
        _fsync_dir(path.parent.parent)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class IOLogWriter:
    """Queue of I/O records, written in encrypted batches by one background thread.

    ``submit`` never blocks on disk. ``flush`` writes the queue synchronously, at most
    ``batch_size`` records per file; ``close`` writes what is left and stops the thread. The batches
    are numbered 1, 2, ... under the writer's random ``writer_id`` (see the module's docstring).
    """

    def __init__(
        self,
        directory: Path,
        master_key: bytes,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        shipper: Callable[[Path], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise GovdeployError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval <= 0:
            raise GovdeployError(f"flush_interval must be positive, got {flush_interval}")
        self.directory = Path(directory)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.shipper = shipper
        self._master_key = master_key
        self.writer_id = secrets.token_hex(WRITER_HEX // 2)
        self._sequence = 0  # of the last batch written
        self._last_day: str | None = None  # of the last batch written
        self._unshipped: deque[Path] = deque()
        self._queue: deque[IORecord] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._flush_lock = threading.Lock()
        self._closed = False
        self._stopping = False
        self._written = 0
        self._last_time: datetime | None = None
        self._thread: threading.Thread | None = None

    @property
    def written(self) -> int:
        """Number of records durably written so far."""
        with self._lock:
            return self._written

    @property
    def sequence(self) -> int:
        """Sequence number of the last batch written (0 before the first)."""
        return self._sequence

    @property
    def pending(self) -> int:
        """Number of records submitted but not yet written."""
        with self._lock:
            return len(self._queue)

    def start(self) -> None:
        """Start the one background thread that flushes batches; a second call does nothing."""
        with self._lock:
            if self._closed:
                raise GovdeployError(f"the I/O log writer of {self.directory} is closed; create a new one")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="govdeploy-iolog", daemon=True)
        atexit.register(self.close)
        self._thread.start()
        logger.info("I/O log writer %s writes its batches to %s", self.writer_id, self.directory)

    def submit(self, record: IORecord) -> None:
        """Queue one record for writing; thread-safe and non-blocking."""
        with self._lock:
            if self._closed:
                raise GovdeployError(
                    f"I/O record {record.id} submitted after the writer of {self.directory} was closed"
                )
            self._queue.append(record)
            if len(self._queue) >= self.batch_size:
                self._wake.notify()

    def flush(self) -> None:
        """Synchronously write whatever is queued now, ``batch_size`` records per file.

        If a batch cannot be written, its records go back to the front of the queue and
        GovdeployError is raised; the next flush retries them.
        """
        with self._flush_lock:
            with self._lock:
                remaining = len(self._queue)
            while remaining > 0:
                with self._lock:
                    count = min(self.batch_size, remaining, len(self._queue))
                    batch = [self._queue.popleft() for _ in range(count)]
                if not batch:
                    return
                remaining -= len(batch)
                path = self._write(batch)
                self._ship(path)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new records, write everything still queued and stop the thread; idempotent.

        Raise GovdeployError if records could still not be written after ``timeout`` seconds;
        they stay queued and a later ``close`` retries them.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        failure: GovdeployError | None = None
        while self.pending:
            try:
                self.flush()
                failure = None
            except GovdeployError as exc:
                failure = exc
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(self.flush_interval, left))
        self._ship_last()
        if failure is not None and self.pending:
            raise GovdeployError(
                f"{self.pending} I/O log records could not be written to {self.directory} ({failure}); "
                "they are still queued: fix the directory and call close() again"
            ) from failure
        atexit.unregister(self.close)

    def _next_name(self) -> tuple[str, str]:
        """Day directory and file name of the next batch; times strictly increase within the writer."""
        now = datetime.now(UTC)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(microseconds=1)
        self._last_time = now
        return batch_name(now, self.writer_id, self._sequence + 1, self._last_day)

    def _write(self, batch: list[IORecord]) -> Path:
        """Write one batch durably and count it; on failure put it back at the front of the queue.

        The sequence advances only with a batch written: a failed one leaves no file (also not one
        renamed into place before a failed fsync), and its retry takes the same sequence.
        """
        day, name = self._next_name()
        path = self.directory / day / name
        try:
            _write_atomic(path, encode_batch(batch, self._master_key, batch_key(day, name)))
        except Exception as exc:
            _discard(path)
            with self._lock:
                self._queue.extendleft(reversed(batch))
            raise GovdeployError(
                f"could not write an I/O log batch of {len(batch)} records to {path}: {exc}; "
                "the records stay queued and are retried on the next flush"
            ) from exc
        self._sequence, self._last_day = self._sequence + 1, day
        with self._lock:
            self._written += len(batch)
        return path

    def _ship(self, path: Path) -> None:
        """Hand a durably written batch to the shipper, after those that could not be shipped yet."""
        if self.shipper is None:
            return
        self._unshipped.append(path)
        self._ship_unshipped()

    def _ship_unshipped(self) -> None:
        """Ship the waiting batches oldest first; a failure only logs: the rest wait for the next try."""
        while self.shipper is not None and self._unshipped:
            path = self._unshipped[0]
            try:
                self.shipper(path)
            except Exception as exc:
                logger.warning(
                    "could not ship I/O log batch %s (%s); it stays on local disk, %d batches wait and "
                    "are retried after the next write or on close (or copy them to the bucket as "
                    "iolog/<day>/<name>)",
                    path,
                    exc,
                    len(self._unshipped),
                )
                return
            self._unshipped.popleft()

    def _ship_last(self) -> None:
        """On close: a last try to ship the waiting batches; those left are named for an operator."""
        with self._flush_lock:
            self._ship_unshipped()
            if self._unshipped:
                logger.error(
                    "%d I/O log batches of writer %s were not shipped, from %s on: drift windows lack "
                    "their records until they are copied to the bucket as iolog/<day>/<name>",
                    len(self._unshipped),
                    self.writer_id,
                    self._unshipped[0],
                )

    def _run(self) -> None:
        """Background loop: flush when a batch is full, every ``flush_interval``, and on stop."""
        while True:
            with self._lock:
                self._wake.wait_for(
                    lambda: self._stopping or len(self._queue) >= self.batch_size, self.flush_interval
                )
                stopping = self._stopping
            try:
                self.flush()
            except Exception:
                logger.warning("I/O log flush failed; retrying", exc_info=True)
                with self._lock:
                    self._wake.wait_for(lambda: self._stopping, self.flush_interval)
            if stopping:
                return
