"""Signed serving records: which versions serve a model, with which challenger weight.

Every change of serving state (promotion, canary step, canary outcome, rollback) writes a record
(``govdeploy.trust.serving_content``) signed with the model-signing key (ECDSA P-256 over its
canonical JSON) to the bucket (``serving/<model>.json``, versioned). The gateway serves an aliased
version only if the latest verified record names it: an alias moved by hand, without a record,
changes nothing.

Records are bound and ordered: the signed content names the model (a record copied to another
model's key is refused), a ``sequence`` that grows by one with every record of that model, and the
audit record of the decision. The serving state is the record of highest sequence among every
version of the key (``History``); a reader also remembers the newest record it verified
(``govdeploy.trust.seen_records``): re-putting an earlier record, validly signed as it is, changes
nothing.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from govdeploy.backends import storage
from govdeploy.errors import SignatureError, StorageError
from govdeploy.trust.audit import canonical
from govdeploy.trust.key_dates import UNDATED, dates_of, parse_moment
from govdeploy.trust.keys import load_ecdsa_private, load_ecdsa_public

# SeenRecords and accept are re-exported: the gateway's serving state (govdeploy.serving.gateway.state)
# reads its memory of verified records through this module
from govdeploy.trust.seen_records import SeenRecords as SeenRecords
from govdeploy.trust.seen_records import accept as accept
from govdeploy.trust.serving_content import ServingRecord, record_digest

PREFIX = "serving/"
REPUBLISH = (
    "publish a new record of the current serving state (govdeploy.serving.rollout.publish, "
    "which every promotion, canary step and rollback calls)"
)


def key_of(model: str) -> str:
    return f"{PREFIX}{model}.json"


def sign_record(record: ServingRecord, key: Path) -> bytes:
    signature = load_ecdsa_private(key).sign(canonical(record.model_dump()), ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {"record": record.model_dump(), "signature": base64.b64encode(signature).decode()}
    ).encode()


def _parse(document: bytes) -> tuple[ServingRecord, bytes]:
    try:
        parsed = json.loads(document)
        content = parsed["record"]
        if isinstance(content, dict) and "sequence" not in content:
            raise SignatureError(
                f"the serving record of {content.get('model')!r} has no sequence (written before "
                f"records were ordered); {REPUBLISH}"
            )
        return ServingRecord.model_validate(content), base64.b64decode(parsed["signature"])
    except (ValueError, KeyError, TypeError, ValidationError):
        raise SignatureError("the serving record is not a signed record") from None


def verify_record(document: bytes, trusted_keys: list[Path]) -> ServingRecord:
    """The record, if its signature verifies with one of ``trusted_keys`` that could sign at the
    record's ``issued_at`` (a ``PinnedKey`` carries its dates: a retired key verifies only what it
    signed before its retirement); SignatureError otherwise, naming the key and its dates when the
    signature is good but the key could not sign then."""
    record, signature = _parse(document)
    issued = parse_moment(record.issued_at)
    refusal = ""
    for path in trusted_keys:
        key = load_ecdsa_public(path)
        try:
            key.verify(signature, canonical(record.model_dump()), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        dates = dates_of(path)
        if dates == UNDATED or (issued is not None and dates.signs_at(issued)):
            return record
        if not refusal:
            why = dates.why_not(issued) if issued else f"issued_at {record.issued_at!r} is no ISO 8601 time"
            refusal = f"{path.name} {why}"
    if refusal:
        raise SignatureError(
            f"the serving record #{record.sequence} of {record.model} is signed by a trusted serving key "
            f"that could not sign it: {refusal}; {REPUBLISH} with the current serving key"
        )
    raise SignatureError(f"the serving record of {record.model} is not signed by a trusted key")


def _bound(record: ServingRecord, model: str) -> ServingRecord:
    if record.model != model:
        raise SignatureError(
            f"the serving record at {key_of(model)} is signed for model {record.model!r}, not for "
            f"{model!r}: a record copied from another model; {REPUBLISH}"
        )
    return record


def write(client: Any, bucket: str, record: ServingRecord, key: Path) -> None:
    client.put_object(
        Bucket=bucket,
        Key=key_of(record.model),
        Body=sign_record(record, key),
        ContentType="application/json",
    )


@dataclass
class Scan:
    """What the versions of a model's record key hold, by signed sequence (not by upload time)."""

    # the verified record with the highest sequence; None if there is none, or if two different
    # verified records share that sequence (``fork``)
    newest: ServingRecord | None = None
    fork: int | None = None
    # the current object of the key, when it verifies but is not the newest: an earlier record re-put
    replayed: ServingRecord | None = None
    # the verified record one sequence below ``newest`` (the state it replaced), if there is one
    previous: ServingRecord | None = None
    refused: dict[str, str] = field(default_factory=dict)  # version id -> why it did not verify

    def record(self, model: str) -> ServingRecord | None:
        """The newest record, or None if there is none yet; SignatureError on a fork."""
        if self.fork is not None:
            raise SignatureError(
                f"two different serving records of {model} carry sequence #{self.fork}; {REPUBLISH}"
            )
        return self.newest


class History:
    """The verified records of one model's key, each version read and verified once.

    The serving state is the record of highest sequence among all versions of the key, whatever
    the current object is: re-putting an earlier record (a new version, older sequence) is seen for
    what it is, and cannot hide a newer record written just before.

    Every write makes a new current version, so a scan first asks only for the current version id
    (HEAD) and lists the versions again only when it changed: listing is what costs (the local S3
    emulator copies the whole bucket for each listing).
    """

    def __init__(self, model: str, max_reads: int = 256) -> None:
        self.model = model
        self.max_reads = max_reads  # new versions read per scan; the rest wait for the next one
        self.versions: dict[str, ServingRecord | str] = {}
        self.judged: tuple[str | None, Scan] | None = None  # (current version id, its complete scan)

    def highest(self) -> int:
        """The highest sequence of any verified record read so far (0 if none)."""
        return max((r.sequence for r in self.versions.values() if isinstance(r, ServingRecord)), default=0)

    def _verify(self, client: Any, bucket: str, version_id: str, trusted_keys: list[Path]) -> None:
        try:
            body = storage.read_object_version(client, bucket, key_of(self.model), version_id)
            self.versions[version_id] = _bound(verify_record(body, trusted_keys), self.model)
        except SignatureError as exc:
            self.versions[version_id] = str(exc)
        except StorageError:  # gone meanwhile, or a transient failure: read it again next time
            pass

    def scan(self, client: Any, bucket: str, trusted_keys: list[Path]) -> Scan:
        """Read the versions not seen before (StorageError when the bucket cannot be read) and judge
        all; the last judgement again when nothing was written since."""
        current = storage.current_version(client, bucket, key_of(self.model))
        if self.judged is not None and self.judged[0] == current:
            return self.judged[1]
        listed = storage.list_versions(client, bucket, key_of(self.model))
        unread = [version_id for version_id, _ in listed if version_id not in self.versions]
        for version_id in unread[: self.max_reads]:
            self._verify(client, bucket, version_id, trusted_keys)
        latest = next((version_id for version_id, is_current in listed if is_current), None)
        scan = self._judge([version_id for version_id, _ in listed], latest)
        complete = all(version_id in self.versions for version_id, _ in listed)
        self.judged = (current, scan) if complete and latest == current else None
        return scan

    def _judge(self, listed: list[str], latest: str | None) -> Scan:
        scan = Scan()
        records = []
        for version_id in listed:
            entry = self.versions.get(version_id)
            if isinstance(entry, str):
                scan.refused[version_id] = entry
            elif entry is not None:
                records.append(entry)
        if not records:
            return scan
        top = max(record.sequence for record in records)
        digests = {record_digest(r): r for r in records if r.sequence == top}
        if len(digests) > 1:
            scan.fork = top
        else:
            scan.newest = next(iter(digests.values()))
        below = {record_digest(r): r for r in records if r.sequence == top - 1}
        scan.previous = next(iter(below.values())) if len(below) == 1 else None
        current = self.versions.get(latest) if latest else None
        if isinstance(current, ServingRecord) and current.sequence < top:
            scan.replayed = current
        return scan


def read(client: Any, bucket: str, model: str, trusted_keys: list[Path]) -> ServingRecord | None:
    """The verified record of ``model`` with the highest sequence, or None if there is none yet."""
    return History(model).scan(client, bucket, trusted_keys).record(model)


def next_sequence(client: Any, bucket: str, model: str, trusted_keys: list[Path]) -> int:
    """One more than the highest sequence of any verified record of ``model`` in the bucket (1 if none).

    Every version of the key counts, not only the current one: after an older record was re-put,
    the current one is that replay, and continuing from it would repeat sequences readers have seen.
    """
    history = History(model, max_reads=1 << 30)
    history.scan(client, bucket, trusted_keys)
    return history.highest() + 1


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
