"""Reading the lines of an audit log file, and telling a torn last line from a committed one.

A record is committed once its line ends with a newline; only a newline ends a line (text inside
records may hold any other line separator). An unterminated last line is torn: an append that did
not finish, or bytes added after the end. ``read_tail`` reads backwards from the end of the file,
whatever the length of its lines, for the head an append continues from; ``read_lines`` reads
every line, for display and verification.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

CHUNK = 65_536


class TornLine(BaseModel):
    """An unterminated last line: an append that did not finish (or bytes added after the end)."""

    offset: int  # where it starts, in bytes
    length: int
    sha256: str


@dataclass(frozen=True)
class Tail:
    """The end of a log as ``read_tail`` found it."""

    start: int  # where the last complete line starts
    last: bytes | None  # that line, without its newline
    torn: TornLine | None


def _line_start(handle: BinaryIO, end: int) -> int:
    """The offset just after the last newline before ``end`` (0 if there is none)."""
    position = end
    while position > 0:
        size = min(CHUNK, position)
        position -= size
        handle.seek(position)
        found = handle.read(size).rfind(b"\n")
        if found >= 0:
            return position + found + 1
    return 0


def read_tail(path: Path) -> Tail:
    """The last complete line and a torn line after it, read backwards: any line length works."""
    if not path.exists():
        return Tail(0, None, None)
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(size - 1, 0))
        end = size if handle.read(1) in (b"\n", b"") else _line_start(handle, size)
        torn = None
        if end < size:
            handle.seek(end)
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
            torn = TornLine(offset=end, length=size - end, sha256=digest)
        if end == 0:
            return Tail(0, None, torn)
        start = _line_start(handle, end - 1)
        handle.seek(start)
        return Tail(start, handle.read(end - 1 - start), torn)


def read_lines(path: Path) -> tuple[list[tuple[int, bytes]], TornLine | None]:
    """(offset, line) of every complete line, and the torn last line if there is one. Only a
    newline ends a line: text inside records may hold any other line separator."""
    data = path.read_bytes() if path.exists() else b""
    lines, offset = [], 0
    for line in data.split(b"\n")[:-1]:
        lines.append((offset, line))
        offset += len(line) + 1
    torn = None
    if offset < len(data):
        digest = hashlib.sha256(data[offset:]).hexdigest()
        torn = TornLine(offset=offset, length=len(data) - offset, sha256=digest)
    return lines, torn
