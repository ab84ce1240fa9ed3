"""What a reader of serving records remembers: the newest record it verified per model.

A gateway remembers the newest record it verified (``SeenRecords``, persisted so that a restart
keeps it) and refuses an older one or a different one of the same sequence (``accept``):
re-putting an earlier record, validly signed as it is, changes nothing.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from pydantic import BaseModel, TypeAdapter, ValidationError

from govdeploy.errors import StorageError
from govdeploy.trust.serving_content import ServingRecord, record_digest


class Seen(BaseModel):
    """The newest record of a model a reader has verified: its sequence and content digest."""

    sequence: int
    digest: str

    @classmethod
    def of(cls, record: ServingRecord) -> Seen:
        return cls(sequence=record.sequence, digest=record_digest(record))


def accept(record: ServingRecord, seen: Seen | None) -> str | None:
    """Why ``record`` must not replace ``seen`` (the newest verified before), or None if it may."""
    if seen is None or record.sequence > seen.sequence:
        return None
    what = f"record #{record.sequence} of {record.model} (champion v{record.champion}, {record.issued_at})"
    if record.sequence < seen.sequence:
        return f"{what} is older than record #{seen.sequence} already verified (a replay?)"
    digest = record_digest(record)
    if digest != seen.digest:
        return (
            f"{what} differs from the record #{seen.sequence} already verified "
            f"(sha256 {digest[:12]}… instead of {seen.digest[:12]}…; a replayed sibling?)"
        )
    return None


_SEEN_FILE = TypeAdapter(dict[str, Seen])


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(map(str, error["loc"]))
    return f"{where}: {error['msg']}" if where else error["msg"]


class SeenRecords:
    """The newest verified record per model, in memory and in ``path`` so that a restart keeps it.

    Processes may share the file: a write merges under a file lock, keeping the higher sequence.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.newest = self._load()

    def get(self, model: str) -> Seen | None:
        with self.lock:
            return self.newest.get(model)

    def remember(self, record: ServingRecord) -> bool:
        """Note ``record`` as its model's newest (memory first, then the file); False if known."""
        seen = Seen.of(record)
        with self.lock:
            if self.newest.get(record.model) == seen:
                return False
            self.newest[record.model] = seen
        try:
            self._save(record.model, seen)
        except OSError as exc:
            raise StorageError(f"{self.path} could not be written ({exc}); check its directory") from exc
        return True

    def _load(self) -> dict[str, Seen]:
        try:
            return dict(_SEEN_FILE.validate_json(self.path.read_bytes()))
        except FileNotFoundError:
            return {}
        except (OSError, ValidationError) as exc:
            reason = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise StorageError(
                f"{self.path} (the newest serving record verified per model) cannot be read: {reason}; "
                "restore it, or delete it to start over (an older record is then accepted until a "
                "newer one is seen)"
            ) from None

    def _save(self, model: str, seen: Seen) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            on_disk = self._load()
            if model not in on_disk or on_disk[model].sequence <= seen.sequence:
                on_disk[model] = seen
            partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
            with partial.open("wb") as handle:
                handle.write(_SEEN_FILE.dump_json(on_disk, indent=2))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, self.path)
