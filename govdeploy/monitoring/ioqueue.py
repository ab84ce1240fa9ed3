"""The I/O log's queue: records submitted and not yet written, oldest first.

Thread-safe and bounded. ``put`` never blocks: records wait up to ``max_queued`` (then the writer
refuses predictions, ``govdeploy.monitoring.iohealth``), and records of responses not gated by that
refusal (refusals, access errors) may use a reserve of as many again; beyond ``2 * max_queued`` a
record is lost, counted in ``lost``, logged and alerted. The writer takes records out for a batch and
puts a batch that could not be written back at the front, so that its retry holds the same records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

from govdeploy.errors import GovdeployError
from govdeploy.monitoring.iorecords import IORecord
from govdeploy.monitoring.ioship import Alarms

logger = logging.getLogger(__name__)

Queued = tuple[float, IORecord]  # (monotonic time submitted, record)


class RecordQueue:
    """Records waiting to be written to ``directory``; ``close`` refuses new ones and wakes waiters."""

    def __init__(self, directory: Path, alarms: Alarms, *, batch_size: int, max_queued: int) -> None:
        self.directory, self.alarms = directory, alarms
        self.batch_size, self.max_queued = batch_size, max_queued
        self.items: deque[Queued] = deque()  # read without the lock only by cheap health checks
        self.closed = False
        self.lost = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self.items)

    def put(self, record: IORecord) -> None:
        """Queue one record, waking the writer when a batch is full; GovdeployError once closed."""
        with self._lock:
            if self.closed:
                raise GovdeployError(
                    f"I/O record {record.id} submitted after the writer of {self.directory} was closed"
                )
            if len(self.items) < 2 * self.max_queued:
                self.items.append((time.monotonic(), record))
                if len(self.items) >= self.batch_size:
                    self._wake.notify()
                return
            self.lost += 1
        logger.error(
            "I/O record %s (%s, %s) lost: %d records wait to be written to %s",
            record.id,
            record.route,
            record.status,
            2 * self.max_queued,
            self.directory,
        )
        self.alarms.raise_once("lost", f"I/O records are being lost: the queue of {self.directory} is full")

    def take(self, count: int) -> list[Queued]:
        """Up to ``count`` records from the front."""
        with self._lock:
            return [self.items.popleft() for _ in range(min(count, len(self.items)))]

    def requeue(self, batch: list[Queued]) -> None:
        """Put ``batch`` back at the front, in its order."""
        with self._lock:
            self.items.extendleft(reversed(batch))

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._wake.notify_all()

    def wait_for_batch(self, timeout: float) -> tuple[bool, bool]:
        """Wait until a batch is full, the queue is closed or ``timeout`` passed: (closed, empty)."""
        with self._lock:
            self._wake.wait_for(lambda: self.closed or len(self.items) >= self.batch_size, timeout)
            return self.closed, not self.items

    def wait_closed(self, timeout: float) -> None:
        with self._lock:
            self._wake.wait_for(lambda: self.closed, timeout)
