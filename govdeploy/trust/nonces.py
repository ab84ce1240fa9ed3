"""Single-use nonces: a signed token counts for one run only, across runs and processes.

A used nonce is a file created exclusively (``O_CREAT | O_EXCL``) in a directory of the server's
state directory, which SECURITY.md counts as trusted (unlike flow parameters or bucket objects). Of
two runs racing with one token exactly one creates the file; the other is refused, and so is any
later run. The file says which flow run used the nonce, and when, for the refusal's reason.

A nonce is kept until a day after its token expired (an expired token is refused whatever its
nonce), then pruned by the next claim: the directory holds the tokens of about a day, not of every
run ever made. Records that cannot be read are kept.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ValidationError

from govdeploy.errors import ApprovalError
from govdeploy.trust.validity import iso, now_utc

log = logging.getLogger("govdeploy.nonces")

NONCE = re.compile(r"[0-9a-f]{32}")
MAX_RECORD_BYTES = 4096
# how long after its token's expiry a used nonce is kept (far beyond any clock skew allowed)
KEEP_AFTER_EXPIRY = timedelta(days=1)


class NonceUse(BaseModel):
    """Who used a nonce: the flow run (when known), the signer, and when."""

    flow_run_id: str | None
    signer: str
    used_at: str
    expires_at: str


@dataclass(frozen=True)
class UsedNonces:
    """The nonces of one kind of token (e.g. submissions) that were used already."""

    directory: Path
    kind: str  # what the tokens are, for messages: "submission"

    def claim(self, nonce: str, use: NonceUse) -> None:
        """Record ``nonce`` as used by ``use``; ApprovalError when it was used before (a replay) or
        the use cannot be recorded (the token is then refused: reuse cannot be ruled out)."""
        if not NONCE.fullmatch(nonce):
            raise ApprovalError(f"the {self.kind} nonce {nonce[:40]!r} is not 32 hex digits; sign a new one")
        path = self.directory / nonce
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ApprovalError(self._replayed(nonce, path)) from None
        except OSError as exc:
            raise ApprovalError(
                f"the use of {self.kind} {nonce[:8]}… cannot be recorded in {self.directory} ({exc}); "
                "the token is refused until the directory is writable"
            ) from None
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(use.model_dump_json())
        self.prune(now_utc(), keep=nonce)

    def prune(self, now: datetime, keep: str = "") -> int:
        """Delete the records of nonces whose token expired more than ``KEEP_AFTER_EXPIRY`` before
        ``now``; returns how many. Never raises: a record left behind only takes space."""
        pruned = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError as exc:
            log.warning("used %s nonces in %s not pruned: %s", self.kind, self.directory, exc)
            return 0
        for entry in entries:
            if entry.name == keep or not NONCE.fullmatch(entry.name):
                continue
            use = self._use(Path(entry.path))
            if use is None or not _expired(use.expires_at, now - KEEP_AFTER_EXPIRY):
                continue
            try:
                os.unlink(entry.path)
                pruned += 1
            except OSError as exc:
                log.warning("used %s nonce %s… not pruned: %s", self.kind, entry.name[:8], exc)
        return pruned

    def _replayed(self, nonce: str, path: Path) -> str:
        earlier = self._use(path)
        by = (
            f" by flow run {earlier.flow_run_id or '(unknown)'} at {earlier.used_at}"
            if earlier
            else " (record unreadable)"
        )
        return (
            f"{self.kind} {nonce[:8]}… was already used{by}; a {self.kind} counts for one run only "
            "(replay refused): sign a new one"
        )

    @staticmethod
    def _use(path: Path) -> NonceUse | None:
        try:
            with path.open("rb") as file:
                return NonceUse.model_validate_json(file.read(MAX_RECORD_BYTES))
        except (OSError, ValidationError):
            return None


def _expired(expires_at: str, before: datetime) -> bool:
    try:
        moment = datetime.fromisoformat(expires_at)
        return moment.tzinfo is not None and moment < before
    except (TypeError, ValueError):
        return False  # unreadable: kept


def submission_nonces(state_dir: Path) -> UsedNonces:
    """The used submission nonces of a deployment (under its state directory)."""
    return UsedNonces(state_dir / "nonces" / "submissions", "submission")


def new_use(flow_run_id: str | None, signer: str, expires_at: str) -> NonceUse:
    return NonceUse(flow_run_id=flow_run_id, signer=signer, used_at=iso(now_utc()), expires_at=expires_at)
