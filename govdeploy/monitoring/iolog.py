"""Durable, batched, encrypted I/O logging of the model-serving gateway.

Request handlers ``submit`` one ``IORecord`` per response; the call only appends to a bounded queue
(``govdeploy.monitoring.ioqueue``). One background thread writes the queue in batches: one file per
batch, sealed for its bucket key and written atomically (``govdeploy.monitoring.iospool``). A batch
that cannot be written goes back to the front of the queue and is retried under the same sequence
number; ``close`` writes what is still queued. A record that cannot be serialised is written as a
record that says so (``govdeploy.monitoring.iorecords``). Records written therefore equal records
submitted, under load, on faults and on shutdown. ``refusal`` and ``problems`` say when the writer
cannot keep that promise (``govdeploy.monitoring.iohealth``). Every batch written locally is shipped
to the bucket under its key by ``ShipBacklog`` (``govdeploy.monitoring.ioship``), retried until the
bucket has it; a new writer on the same directory ships the batches its predecessors left behind.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from govdeploy.errors import GovdeployError
from govdeploy.monitoring.iohealth import FailurePolicy, SpoolHealth
from govdeploy.monitoring.ioqueue import Queued, RecordQueue
from govdeploy.monitoring.iorecords import IORecord
from govdeploy.monitoring.ioship import Alarms, Alert, ShipBacklog
from govdeploy.monitoring.iospool import BatchSpool

logger = logging.getLogger(__name__)


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
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.alarms = Alarms(alert)
        self.backlog = (
            None
            if shipper is None
            else ShipBacklog(
                self.directory, shipper, self.alarms, retry_min=ship_retry_min, retry_max=ship_retry_max
            )
        )
        self.spool = BatchSpool(self.directory, master_key, self.backlog)
        self.writer_id = self.spool.writer_id  # in the name of each of its batches
        self.health = SpoolHealth(
            self.directory,
            self.alarms,
            max_queued=max_queued,
            stall_seconds=stall_seconds,
            on_failure=on_failure,
            backlog_max=backlog_max,
            backlog_max_age=backlog_max_age,
            probe_interval=probe_interval,
        )
        self.queue = RecordQueue(self.directory, self.alarms, batch_size=batch_size, max_queued=max_queued)
        self._lock = threading.Lock()  # of the thread and the count of records written
        self._flush_lock = threading.Lock()
        self._written = 0
        self._thread: threading.Thread | None = None

    @property
    def written(self) -> int:
        """Number of records durably written so far."""
        with self._lock:
            return self._written

    @property
    def lost(self) -> int:
        """Number of records dropped because the queue was over twice its bound."""
        return self.queue.lost

    @property
    def sequence(self) -> int:
        """Sequence number of the last batch written (0 before the first)."""
        return self.spool.sequence

    @property
    def pending(self) -> int:
        """Number of records submitted but not yet written."""
        return self.queue.pending

    def start(self) -> None:
        """Start the background threads (writing, shipping); a second call does nothing."""
        with self._lock:
            if self.queue.closed:
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
        self.queue.put(record)

    def refusal(self) -> str | None:
        """Why a prediction must not be answered now (its record might not be written), or None.

        Cheap enough for every request. Always None under the ``degrade`` policy (``problems``
        still names the fault, and it is alerted).
        """
        return None if self.health.on_failure == "degrade" else self._fault()

    def problems(self) -> list[str]:
        """What keeps the I/O log from being healthy now, whatever the policy; empty when healthy."""
        died = self._thread is not None and not self._thread.is_alive() and not self.queue.closed
        return self.health.problems(self._fault(), self.queue.lost, died, self.backlog)

    def _fault(self) -> str | None:
        return self.health.fault(self.queue.closed, self.queue.items)

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
            remaining = self.queue.pending
            while remaining > 0:
                batch = self.queue.take(min(self.batch_size, remaining))
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
        self.queue.close()
        with self._lock:
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

    def _write(self, batch: list[Queued]) -> Path:
        """Write one batch durably and count it; on failure put it back at the front of the queue."""
        path = self.spool.next_path()
        try:
            self.spool.write(path, [record for _, record in batch])
        except Exception as exc:
            self.queue.requeue(batch)
            self.health.unwritable(f"{type(exc).__name__}: {exc}")
            raise GovdeployError(
                f"could not write an I/O log batch of {len(batch)} records to {path}: {exc}; "
                "the records stay queued and are retried on the next flush"
            ) from exc
        self.health.writable()
        with self._lock:
            self._written += len(batch)
        return path

    def _run(self) -> None:
        """Background loop: flush when a batch is full, every ``flush_interval``, and on stop; probe
        the spool while idle."""
        while True:
            stopping, idle = self.queue.wait_for_batch(self.flush_interval)
            try:
                self._write_queued()
                if idle:
                    self.health.probe_if_due()
            except Exception:
                logger.warning("I/O log flush failed; retrying", exc_info=True)
                self.queue.wait_closed(self.flush_interval)
            if stopping:
                return
