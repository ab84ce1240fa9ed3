"""Durable writes to the I/O log's local spool, shared by the writer and its shipping backlog.

A file is written atomically and durably (``.partial``, fsync, ``os.replace``, fsync of the
directory); a new directory is made durable in its parent; what a failed write leaves is removed,
and a failure to remove it only logs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from govdeploy.monitoring.iorecords import PARTIAL_SUFFIX

logger = logging.getLogger(__name__)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    """Remove what a failed write may have left at ``path``; a failure to do so only logs."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("could not remove %s after its write failed (%s)", path, exc)


def make_dir(directory: Path) -> None:
    """Create ``directory`` (and its parents) durably."""
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fsync_dir(directory.parent)


def write_atomic(path: Path, data: bytes) -> None:
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
