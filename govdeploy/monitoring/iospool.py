"""The batch files of one I/O log writer in its local spool.

Every writer (one per gateway process; a restart is a new writer) has a random id of 16 hex
characters and numbers its batches 1, 2, 3, ... (``govdeploy.monitoring.iorecords`` names them and
seals each for its bucket key). A batch is written atomically (``govdeploy.monitoring.iofiles``) with
its shipping marker beside it (``govdeploy.monitoring.ioship``); the sequence advances only with a
batch written, so a failed batch leaves no file and its retry takes the same sequence.
"""

from __future__ import annotations

import os
import secrets
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from govdeploy.monitoring.iofiles import discard, write_atomic
from govdeploy.monitoring.iorecords import WRITER_HEX, IORecord, batch_key, batch_name, encode_batch
from govdeploy.monitoring.ioship import ShipBacklog

PROBE_NAME = ".probe"  # then "-<pid>-<thread>": writers of several processes may share a spool


class BatchSpool:
    """Where and how one writer's batches are written: ``next_path``, then ``write``."""

    def __init__(self, directory: Path, master_key: bytes, backlog: ShipBacklog | None) -> None:
        self.directory, self.backlog = directory, backlog
        self._master_key = master_key
        self.writer_id = secrets.token_hex(WRITER_HEX // 2)
        self.sequence = 0  # of the last batch written
        self._last_day: str | None = None  # of the last batch written
        self._last_time: datetime | None = None

    def next_path(self) -> Path:
        """Where the next batch goes, ``<day>/<name>``; times strictly increase within the writer."""
        now = datetime.now(UTC)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(microseconds=1)
        self._last_time = now
        day, name = batch_name(now, self.writer_id, self.sequence + 1, self._last_day)
        return self.directory / day / name

    def write(self, path: Path, records: list[IORecord]) -> None:
        """Write the batch at ``path`` (from ``next_path``) durably and queue it for shipping.

        On failure, raise and leave no file (also not one renamed into place before a failed
        fsync) and no shipping marker; the sequence stays, so the retry takes the same one.
        """
        day, name = path.parent.name, path.name
        try:
            if self.backlog is not None:
                self.backlog.mark(path)
            write_atomic(path, encode_batch(records, self._master_key, batch_key(day, name)))
        except Exception:
            discard(path)
            if self.backlog is not None:
                self.backlog.unmark(path)
            raise
        self.sequence, self._last_day = self.sequence + 1, day
        if self.backlog is not None:
            self.backlog.add(path)


def probe(directory: Path) -> None:
    """Check that ``directory`` can still be written: a small file written, synced and removed."""
    path = directory / f"{PROBE_NAME}-{os.getpid()}-{threading.get_ident()}"
    try:
        write_atomic(path, b"probe")
        path.unlink()
    except Exception:
        discard(path)
        raise
