"""Durable, batched, encrypted I/O logging of the model-serving gateway.

Request handlers ``submit`` one ``IORecord`` per response; the call only appends to a bounded
in-memory queue. One background thread writes the queue in batches: one file per batch, sealed for
its bucket key (``govdeploy.monitoring.iorecords``) and written atomically (``.partial``, fsync,
``os.replace``, fsync of the directory). A batch that cannot be written goes back to the front of
the queue and is retried under the same sequence number; ``close`` writes what is still queued. A
record that cannot be serialised is written as a record that says so; it never blocks the others.
Records written therefore equal records submitted, under load, on faults and on shutdown.

The writer knows whether it can keep its promise: ``refusal`` says why a prediction must not be
answered now (the local spool cannot be written, checked also by a probe while idle; the queue holds
``max_queued`` records; the oldest record has waited ``stall_seconds``), and ``problems`` adds what
an operator must see (records lost, the shipping backlog too large or too old). The gateway answers
503 while there is a refusal, unless its policy is ``degrade``; each problem is alerted once.
Records of responses not gated by ``refusal`` (refusals, access errors) may use a reserve of as many
again; beyond ``2 * max_queued`` a record is lost, counted in ``lost``, logged and alerted.

Every writer (one per gateway process; a restart is a new writer) has a random id of 16 hex
characters and numbers its batches 1, 2, 3, ... Shipping is ``ShipBacklog``'s
(``govdeploy.monitoring.ioship``): every batch written locally is uploaded to the bucket under its
key, retried until the bucket has it; a new writer on the same directory ships the batches its
predecessors left behind.
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
from typing import Literal

from govdeploy.errors import GovdeployError
from govdeploy.monitoring.iorecords import (
    PARTIAL_SUFFIX,
    WRITER_HEX,
    IORecord,
    batch_key,
    batch_name,
    encode_batch,
)
from govdeploy.monitoring.ioship import Alarms, Alert, ShipBacklog, discard, fsync_dir, make_dir

logger = logging.getLogger(__name__)

PROBE_NAME = ".probe"
FailurePolicy = Literal["refuse", "degrade"]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably: ``.partial``, fsync, ``os.replace``."""
    make_dir(path.parent)
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
    fsync_dir(path.parent)


class IOLogWriter:
    """Bounded queue of I/O records, written in encrypted batches by one background thread.

    ``submit`` never blocks on disk. ``flush`` writes the queue synchronously, at most
    ``batch_size`` records per file, and tries to ship; ``close`` writes what is left and stops the
    threads. The batches are numbered 1, 2, ... under the writer's random ``writer_id`` (see the
    module's docstring). ``refusal`` and ``problems`` say what a caller and an operator must know.
    """

    def __init__(
        self,
        directory: Path,
        master_key: bytes,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        shipper: Callable[[Path], None] | None = None,
        max_queued: int = 20_000,
        stall_seconds: float = 10.0,
        on_failure: FailurePolicy = "refuse",
        backlog_max: int = 500,
        backlog_max_age: float = 900.0,
        probe_interval: float = 5.0,
        ship_retry_min: float = 0.5,
        ship_retry_max: float = 60.0,
        alert: Alert | None = None,
    ) -> None:
        if batch_size < 1 or max_queued < 1:
            raise GovdeployError(
                f"batch_size and max_queued must be at least 1, got {batch_size}, {max_queued}"
            )
        if min(flush_interval, stall_seconds, probe_interval) <= 0:
            raise GovdeployError(
                f"flush_interval, stall_seconds and probe_interval must be positive, got "
                f"{flush_interval}, {stall_seconds}, {probe_interval}"
            )
        self.directory = Path(directory)
        self.batch_size, self.flush_interval, self.max_queued = batch_size, flush_interval, max_queued
        self.stall_seconds, self.on_failure, self.probe_interval = stall_seconds, on_failure, probe_interval
        self.backlog_max, self.backlog_max_age = backlog_max, backlog_max_age
        self.alarms = Alarms(alert)
        self.backlog = (
            None
            if shipper is None
            else ShipBacklog(
                self.directory, shipper, self.alarms, retry_min=ship_retry_min, retry_max=ship_retry_max
            )
        )
        self._master_key = master_key
        self.writer_id = secrets.token_hex(WRITER_HEX // 2)
        self._sequence = 0  # of the last batch written
        self._last_day: str | None = None  # of the last batch written
        self._queue: deque[tuple[float, IORecord]] = deque()  # (monotonic time submitted, record)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._flush_lock = threading.Lock()
        self._closed = False
        self._stopping = False
        self._written = 0
        self._lost = 0
        self._write_error: str | None = None  # why the last write (or probe) of the spool failed
        self._last_check = time.monotonic()  # of the last successful write or probe
        self._last_time: datetime | None = None
        self._thread: threading.Thread | None = None

    @property
    def written(self) -> int:
        """Number of records durably written so far."""
        with self._lock:
            return self._written

    @property
    def lost(self) -> int:
        """Number of records dropped because the queue was over twice its bound."""
        return self._lost

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
        """Start the background threads (writing, shipping); a second call does nothing."""
        with self._lock:
            if self._closed:
                raise GovdeployError(f"the I/O log writer of {self.directory} is closed; create a new one")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="govdeploy-iolog", daemon=True)
        atexit.register(self.close)
        if self.backlog is not None:
            with self._flush_lock:
                self.backlog.load()
            self.backlog.start()
        self._thread.start()
        logger.info("I/O log writer %s writes its batches to %s", self.writer_id, self.directory)

    def submit(self, record: IORecord) -> None:
        """Queue one record for writing; thread-safe and non-blocking.

        Over twice ``max_queued`` records waiting, the record is lost: counted, logged and alerted.
        """
        with self._lock:
            if self._closed:
                raise GovdeployError(
                    f"I/O record {record.id} submitted after the writer of {self.directory} was closed"
                )
            if len(self._queue) < 2 * self.max_queued:
                self._queue.append((time.monotonic(), record))
                if len(self._queue) >= self.batch_size:
                    self._wake.notify()
                return
            self._lost += 1
        logger.error(
            "I/O record %s (%s, %s) lost: %d records wait to be written to %s",
            record.id,
            record.route,
            record.status,
            2 * self.max_queued,
            self.directory,
        )
        self.alarms.raise_once("lost", f"I/O records are being lost: the queue of {self.directory} is full")

    def refusal(self) -> str | None:
        """Why a prediction must not be answered now (its record might not be written), or None.

        Cheap enough for every request. Always None under the ``degrade`` policy (``problems``
        still names the fault, and it is alerted).
        """
        return None if self.on_failure == "degrade" else self._fault()

    def problems(self) -> list[str]:
        """What keeps the I/O log from being healthy now, whatever the policy; empty when healthy."""
        found = [fault] if (fault := self._fault()) else []
        if fault and self.on_failure == "degrade":
            found.append("predictions are answered although their records may not be written (degrade)")
        if self._lost:
            found.append(f"{self._lost} I/O records were lost because the queue was full")
        if self._thread is not None and not self._thread.is_alive() and not self._closed:
            found.append("the I/O log writer thread is not running")
        if self.backlog is not None:
            found += self._backlog_problems(self.backlog)
        return found

    def _fault(self) -> str | None:
        """The first reason records may not be written: closed, spool unwritable, queue full, stalled."""
        if self._closed:
            return "the I/O log is closed: the gateway is stopping"
        if self._write_error is not None:
            return f"I/O records cannot be written to {self.directory}: {self._write_error}"
        queue = self._queue
        if len(queue) >= self.max_queued:
            return f"the I/O log queue is full: {len(queue)} records wait to be written"
        try:
            waited = time.monotonic() - queue[0][0]
        except IndexError:  # emptied meanwhile
            return None
        if waited > self.stall_seconds:
            return f"the I/O log is stalled: a record has waited {waited:.1f}s to be written"
        return None

    def _backlog_problems(self, backlog: ShipBacklog) -> list[str]:
        found = []
        if backlog.size > self.backlog_max:
            found.append(f"{backlog.size} I/O log batches wait to be shipped (more than {self.backlog_max})")
        age = backlog.oldest_age()
        if age > self.backlog_max_age:
            found.append(f"an I/O log batch has waited {age:.0f}s to be shipped ({backlog.last_error})")
        return found

    def flush(self) -> None:
        """Synchronously write whatever is queued now, ``batch_size`` records per file, then try to
        ship the backlog now (whatever its backoff).

        If a batch cannot be written, its records go back to the front of the queue and
        GovdeployError is raised; the next flush retries them.
        """
        self._write_queued()
        if self.backlog is not None:
            self.backlog.ship(ignore_backoff=True)

    def _write_queued(self) -> None:
        with self._flush_lock:
            if self.backlog is not None:
                self.backlog.load()
            with self._lock:
                remaining = len(self._queue)
            while remaining > 0:
                with self._lock:
                    count = min(self.batch_size, remaining, len(self._queue))
                    batch = [self._queue.popleft() for _ in range(count)]
                if not batch:
                    return
                remaining -= len(batch)
                self._write(batch)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new records, write everything still queued and stop the threads; idempotent.

        Raise GovdeployError, after logging how many records are lost if the process ends now, if
        records could still not be written after ``timeout`` seconds; they stay queued and a later
        ``close`` retries them.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        failure = self._drain(deadline)
        if self.backlog is not None:
            self.backlog.stop(max(0.0, deadline - time.monotonic()))
        if failure is not None and self.pending:
            message = (
                f"{self.pending} I/O log records could not be written to {self.directory} ({failure}); "
                "they are lost if the process ends now: fix the directory and call close() again"
            )
            logger.critical("%s", message)
            raise GovdeployError(message) from failure
        atexit.unregister(self.close)

    def _drain(self, deadline: float) -> GovdeployError | None:
        """Write what is queued, retrying until ``deadline``; the last failure if records are left."""
        failure: GovdeployError | None = None
        while self.pending:
            try:
                self._write_queued()
                failure = None
            except GovdeployError as exc:
                failure = exc
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(self.flush_interval, left))
        return failure

    def _next_name(self) -> tuple[str, str]:
        """Day directory and file name of the next batch; times strictly increase within the writer."""
        now = datetime.now(UTC)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(microseconds=1)
        self._last_time = now
        return batch_name(now, self.writer_id, self._sequence + 1, self._last_day)

    def _write(self, batch: list[tuple[float, IORecord]]) -> Path:
        """Write one batch durably and count it; on failure put it back at the front of the queue.

        The sequence advances only with a batch written: a failed one leaves no file (also not one
        renamed into place before a failed fsync), and its retry takes the same sequence.
        """
        day, name = self._next_name()
        path = self.directory / day / name
        try:
            if self.backlog is not None:
                self.backlog.mark(path)
            _write_atomic(
                path, encode_batch([record for _, record in batch], self._master_key, batch_key(day, name))
            )
        except Exception as exc:
            self._write_failed(path, batch, exc)
            raise GovdeployError(
                f"could not write an I/O log batch of {len(batch)} records to {path}: {exc}; "
                "the records stay queued and are retried on the next flush"
            ) from exc
        self._sequence, self._last_day = self._sequence + 1, day
        self._writable()
        if self.backlog is not None:
            self.backlog.add(path)
        with self._lock:
            self._written += len(batch)
        return path

    def _write_failed(self, path: Path, batch: list[tuple[float, IORecord]], exc: Exception) -> None:
        discard(path)
        if self.backlog is not None:
            self.backlog.unmark(path)
        with self._lock:
            self._queue.extendleft(reversed(batch))
        self._unwritable(f"{type(exc).__name__}: {exc}")

    def _unwritable(self, reason: str) -> None:
        self._write_error = reason
        self.alarms.raise_once(
            "write",
            f"I/O records cannot be written to {self.directory} ({reason}); predictions are "
            + (
                "answered without durable records (policy degrade)"
                if self.on_failure == "degrade"
                else "refused"
            ),
        )

    def _writable(self) -> None:
        self._write_error = None
        self._last_check = time.monotonic()
        self.alarms.clear("write", f"I/O records are written to {self.directory} again")

    def _probe(self) -> None:
        """While idle, check that the spool can still be written: a small file written, synced, removed."""
        probe = self.directory / PROBE_NAME
        try:
            _write_atomic(probe, b"probe")
            probe.unlink()
        except Exception as exc:
            discard(probe)
            self._last_check = time.monotonic()
            self._unwritable(f"probe failed: {type(exc).__name__}: {exc}")
            return
        self._writable()

    def _run(self) -> None:
        """Background loop: flush when a batch is full, every ``flush_interval``, and on stop; probe
        the spool while idle."""
        while True:
            with self._lock:
                self._wake.wait_for(
                    lambda: self._stopping or len(self._queue) >= self.batch_size, self.flush_interval
                )
                stopping, idle = self._stopping, not self._queue
            try:
                self._write_queued()
                if idle and time.monotonic() - self._last_check >= self.probe_interval:
                    self._probe()
            except Exception:
                logger.warning("I/O log flush failed; retrying", exc_info=True)
                with self._lock:
                    self._wake.wait_for(lambda: self._stopping, self.flush_interval)
            if stopping:
                return
