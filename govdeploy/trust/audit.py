"""The tamper-evident audit trail of governance events.

Each record is hash-chained to the one before (``prev``), hashed over its canonical JSON form and
signed with the audit key (Ed25519). A record is committed when its anchor is claimed in the
object-locked bucket: a conditional write of ``audit/anchors/<seq>.json`` holding the head
(sequence number, hash) and the signed record, locked in COMPLIANCE mode, where no writer can
delete or overwrite it. A writer who rewrites the whole local log, signatures included, no longer
matches the anchors (``govdeploy.trust.anchors`` checks that the bucket really kept them).

The local file is this machine's copy of the one chain that every writer shares. Appends of the
processes of one machine are serialised with ``fcntl.flock`` on ``<log>.lock``; writers on other
machines (their own state directories, the same bucket) are ordered by the claim: before it, a
writer copies the records claimed after its head from the bucket into its file (each checked:
signed by the audit key, chained to the head), and a writer that loses a claim does that again and
claims the next number. So the chain never forks. An object under a key that is not a record of
this chain (written by someone without the key) burns that number: the chain goes on after it, and
``verify`` reports the object. A line is written to the local file after its claim and ends with a
newline. Appending always works whatever was written before:

- every field is capped first (``bounded``, ``govdeploy.trust.audit_bounds``): text too long is
  cut and marked with how many characters were cut and the sha256 of the full value, deep or wide
  structures are summarised the same way, so a record stays small and still proves what it saw;
- the head is read backwards from the end of the file, whatever the length of its lines
  (``govdeploy.trust.audit_file``);
- a torn last line (unterminated: a crash mid-append) is copied to ``<log>.torn-<offset>-<sha>``
  and cut off; the records claimed in the bucket (the torn one too, if its claim was made) are
  copied back from there, and an ``audit.repaired`` record saying what was found continues the
  chain.

The records and the local copy's catch-up are in ``govdeploy.trust.audit_copy``.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.errors import AuditError, GovdeployError
from govdeploy.trust.anchors import ANCHOR_PREFIX as ANCHOR_PREFIX
from govdeploy.trust.anchors import Anchor, AnchorStore
from govdeploy.trust.anchors import S3Anchors as S3Anchors
from govdeploy.trust.audit_bounds import SENSITIVE_BYTES, bounded, cap_text
from govdeploy.trust.audit_bounds import canonical as canonical
from govdeploy.trust.audit_copy import GENESIS as GENESIS
from govdeploy.trust.audit_copy import AuditRecord as AuditRecord
from govdeploy.trust.audit_copy import LocalCopy as LocalCopy
from govdeploy.trust.audit_copy import head_record
from govdeploy.trust.audit_copy import record_hash as record_hash
from govdeploy.trust.audit_file import TornLine, read_tail
from govdeploy.trust.audit_keys import AuditKeys

REPAIRED = "audit.repaired"
# claims lost in a row before an append gives up (each loss means another writer appended)
MAX_CLAIMS = 50
Sealer = Callable[[bytes, str], dict[str, Any]]


class AuditLog(LocalCopy):
    """Append-only, hash-chained, signed JSON-lines log whose records are claimed in the bucket.

    Personal data goes in ``sensitive``: it is sealed (encrypted, bound to the record id) by
    ``sealer`` and stored under ``payload["sealed"]``, so the log holds only ciphertext of it.
    ``keys`` (default: this writer's own key) check what other writers claimed; a writer whose key
    they hold as retired signs nothing new (AuditError).
    """

    def __init__(
        self,
        path: Path,
        key: ed25519.Ed25519PrivateKey,
        anchors: AnchorStore,
        sealer: Sealer | None = None,
        keys: AuditKeys | None = None,
    ) -> None:
        super().__init__(path, keys or key.public_key(), anchors)
        self.key, self.sealer = key, sealer
        self.signer: ed25519.Ed25519PublicKey = key.public_key()
        self.public_key = self.signer

    def append(
        self,
        action: str,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        version: str | None = None,
        policy_digest: str | None = None,
        sensitive: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Write one record and anchor the new head; raise AuditError if either fails.

        Fields are capped (``bounded``, ``cap_text``); a torn last line is repaired first."""
        try:
            entry = self._entry(action, actor, payload or {}, sensitive, model, version, policy_digest)
            with self._locked():
                tail = read_tail(self.path)
                if tail.torn:
                    self._quarantine(tail.torn)
                    found: dict[str, Any] = {"torn_offset": tail.torn.offset, "torn_bytes": tail.torn.length}
                    found |= {"torn_sha256": tail.torn.sha256, "quarantined_to": self._torn_name(tail.torn)}
                    repaired = self._entry(REPAIRED, "govdeploy", found, None, None, None, None)
                    self._claim_next(repaired, head_record(self.path, tail))
                    tail = read_tail(self.path)
                return self._claim_next(entry, head_record(self.path, tail))
        except GovdeployError:
            raise
        except Exception as exc:  # disk full, permissions, a value the sealer refuses: never a bare crash
            raise AuditError(
                f"audit record {cap_text(action, 80)!r} could not be written to {self.path} "
                f"({type(exc).__name__}: {exc}); check the disk and the log's permissions, then run "
                "'govdeploy audit verify'"
            ) from exc

    def _entry(
        self,
        action: str,
        actor: str,
        payload: Mapping[str, Any],
        sensitive: Mapping[str, Any] | None,
        *refs: str | None,
    ) -> dict[str, Any]:
        """Everything of a record but its place in the chain, capped."""
        record_id = str(uuid.uuid4())
        body = bounded(payload)
        if sensitive:
            if self.sealer is None:
                raise AuditError(f"{action}: personal data given but no sealer (master key) configured")
            body["sealed"] = self.sealer(canonical(bounded(sensitive, SENSITIVE_BYTES)), record_id)
        model, version, policy_digest = (None if ref is None else cap_text(ref) for ref in refs)
        return {
            "id": record_id,
            "action": cap_text(action),
            "actor": cap_text(actor),
            "model": model,
            "version": version,
            "policy_digest": policy_digest,
            "payload": body,
        }

    def _claim_next(self, entry: dict[str, Any], last: AuditRecord | None) -> AuditRecord:
        """Copy in what other writers claimed after ``last``, claim the next number for ``entry``
        (again after every lost claim), then write its line; the record."""
        for _ in range(MAX_CLAIMS):
            try:
                last, after = self._catch_up(last)
            except GovdeployError:
                raise
            except Exception as exc:
                raise AuditError(
                    f"audit record {entry['action']!r}: the records claimed in the bucket after record "
                    f"{last.seq if last else 0} could not be read ({exc}); nothing was written: check the "
                    "bucket and try again"
                ) from exc
            record = self._chain(entry, last, after)
            if self._claim(record):
                self._commit(record)
                return record
        raise AuditError(
            f"audit record {entry['action']!r} lost the claim of its sequence number {MAX_CLAIMS} times "
            f"in a row (other writers appended meanwhile); nothing was written, try again"
        )

    def _chain(self, entry: dict[str, Any], last: AuditRecord | None, after: int) -> AuditRecord:
        moment = datetime.now(UTC)
        self.keys.check_signer(self.signer, moment)
        record = AuditRecord(
            seq=max(after, last.seq if last else 0) + 1,
            time=moment.isoformat(timespec="microseconds"),
            prev=last.hash if last else GENESIS,
            **entry,
        )
        record.hash = record_hash(record)
        record.signature = base64.b64encode(self.key.sign(bytes.fromhex(record.hash))).decode()
        return record

    def _claim(self, record: AuditRecord) -> bool:
        anchor = Anchor(seq=record.seq, hash=record.hash, time=record.time, record=record.model_dump_json())
        try:
            return self.anchors.claim(anchor)
        except Exception as exc:
            raise AuditError(
                f"audit record {record.seq} ({record.action}) could not be claimed in the bucket ({exc}); "
                "nothing was written: check the bucket and try again"
            ) from exc

    def _torn_name(self, torn: TornLine) -> str:
        return f"{self.path.name}.torn-{torn.offset}-{torn.sha256[:12]}"

    def _quarantine(self, torn: TornLine) -> None:
        """Copy the torn last line aside and cut it off the log."""
        quarantine = self.path.with_name(self._torn_name(torn))
        with self.path.open("r+b") as log, quarantine.open("wb") as out:
            log.seek(torn.offset)
            shutil.copyfileobj(log, out)
            out.flush()
            os.fsync(out.fileno())
            log.truncate(torn.offset)
            os.fsync(log.fileno())
