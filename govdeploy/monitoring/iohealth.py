"""Whether the I/O log can keep its promise that records written equal records submitted.

``SpoolHealth`` holds what the writer (``govdeploy.monitoring.iolog``) learns of its spool: whether
it can be written, by every batch written and, while idle, by a probe every ``probe_interval``
seconds. With the writer's queue it says why a prediction must not be answered now (``fault``: the
writer is closed, the spool cannot be written, the queue holds ``max_queued`` records, the oldest
record has waited ``stall_seconds``) and what an operator must see (``problems``: also records lost,
the writer thread dead, the shipping backlog too large or too old). The gateway answers 503 while
there is a fault, unless its policy is ``degrade``; each problem is alerted once (``Alarms``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from govdeploy.monitoring.iorecords import IORecord
from govdeploy.monitoring.ioship import Alarms, ShipBacklog
from govdeploy.monitoring.iospool import probe

FailurePolicy = Literal["refuse", "degrade"]


class SpoolHealth:
    """The state of one writer's spool and the faults and problems it gives."""

    def __init__(
        self,
        directory: Path,
        alarms: Alarms,
        *,
        max_queued: int,
        stall_seconds: float,
        on_failure: FailurePolicy,
        backlog_max: int,
        backlog_max_age: float,
        probe_interval: float,
    ) -> None:
        self.directory, self.alarms = directory, alarms
        self.max_queued, self.stall_seconds, self.on_failure = max_queued, stall_seconds, on_failure
        self.backlog_max, self.backlog_max_age = backlog_max, backlog_max_age
        self.probe_interval = probe_interval
        self.write_error: str | None = None  # why the last write (or probe) of the spool failed
        self.last_check = time.monotonic()  # of the last successful write or probe

    def fault(self, closed: bool, queue: Sequence[tuple[float, IORecord]]) -> str | None:
        """The first reason records may not be written: closed, spool unwritable, queue full, stalled."""
        if closed:
            return "the I/O log is closed: the gateway is stopping"
        if self.write_error is not None:
            return f"I/O records cannot be written to {self.directory}: {self.write_error}"
        if len(queue) >= self.max_queued:
            return f"the I/O log queue is full: {len(queue)} records wait to be written"
        try:
            waited = time.monotonic() - queue[0][0]
        except IndexError:  # emptied meanwhile
            return None
        if waited > self.stall_seconds:
            return f"the I/O log is stalled: a record has waited {waited:.1f}s to be written"
        return None

    def problems(
        self, fault: str | None, lost: int, thread_died: bool, backlog: ShipBacklog | None
    ) -> list[str]:
        """What keeps the I/O log from being healthy, given its ``fault`` and the ``lost`` records
        of its queue; empty when healthy."""
        found = [fault] if fault else []
        if fault and self.on_failure == "degrade":
            found.append("predictions are answered although their records may not be written (degrade)")
        if lost:
            found.append(f"{lost} I/O records were lost because the queue was full")
        if thread_died:
            found.append("the I/O log writer thread is not running")
        if backlog is not None:
            found += self._backlog_problems(backlog)
        return found

    def _backlog_problems(self, backlog: ShipBacklog) -> list[str]:
        found = []
        if backlog.size > self.backlog_max:
            found.append(f"{backlog.size} I/O log batches wait to be shipped (more than {self.backlog_max})")
        age = backlog.oldest_age()
        if age > self.backlog_max_age:
            found.append(f"an I/O log batch has waited {age:.0f}s to be shipped ({backlog.last_error})")
        return found

    def unwritable(self, reason: str) -> None:
        self.write_error = reason
        self.alarms.raise_once(
            "write",
            f"I/O records cannot be written to {self.directory} ({reason}); predictions are "
            + (
                "answered without durable records (policy degrade)"
                if self.on_failure == "degrade"
                else "refused"
            ),
        )

    def writable(self) -> None:
        self.write_error = None
        self.last_check = time.monotonic()
        self.alarms.clear("write", f"I/O records are written to {self.directory} again")

    def probe_if_due(self) -> None:
        """While idle, check every ``probe_interval`` seconds that the spool can still be written."""
        if time.monotonic() - self.last_check < self.probe_interval:
            return
        try:
            probe(self.directory)
        except Exception as exc:
            self.last_check = time.monotonic()
            self.unwritable(f"probe failed: {type(exc).__name__}: {exc}")
            return
        self.writable()
