"""The anchors of the audit trail in the object-locked bucket, and what they must show to count.

Each record of the log is claimed as one object, ``audit/anchors/<seq>.json``, written only if
that key does not exist yet (a conditional write, ``If-None-Match: *``) and locked in COMPLIANCE
mode for the policy's retention. The object holds the head (sequence number, hash, the record's
time) and the signed record itself, so several writers on several machines, each with a local
copy of the log, share one chain: the claim of a sequence number is the commit point, and a
writer that loses it reads the records it missed from the bucket and claims the next one.
Content that matches the log proves nothing if the bucket did not really keep it, so
``check_stored`` looks at every stored version and how it is locked:

- lock: mode COMPLIANCE; retain-until in the future and no earlier than the anchor's own time
  (the time of the record it anchors, which the writer takes before it adds the retention to its
  clock) plus the policy's retention, less one second (S3 keeps these dates to the second). A
  faithful anchor meets this exactly; a shortened or downgraded lock does not.
- time: the bucket's LastModified is not before the anchored record's time (less the 15 minutes
  of clock skew S3 accepts in a signed request, and a second); and taken in sequence order the
  anchors were stored at non-decreasing times: appends are serialised and anchor at once, so an
  anchor deleted and written again later stands out.
- history: one version per anchor key and no delete marker; a second version is a rewrite.
- bucket: versioning enabled and Object Lock on.

An emulator (moto) enforces none of this, so there these checks only catch the clumsy: see
``govdeploy.trust.audit_trail.classify_endpoint``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Protocol

from pydantic import BaseModel, Field, ValidationError

ANCHOR_PREFIX = "audit/anchors/"
LOCK_MODE = "COMPLIANCE"
CLOCK_SKEW = timedelta(minutes=15)  # S3 refuses a request signed with a clock further off
RESOLUTION = timedelta(seconds=1)  # S3 keeps LastModified and retain-until to the second


class Anchor(BaseModel):
    seq: int
    hash: str
    time: str
    # the signed record as its log line (anchors written before records were shared have none)
    record: str | None = None


class AnchorStore(Protocol):
    def claim(self, anchor: Anchor) -> bool: ...
    def after(self, seq: int) -> list[Claimed]: ...
    def all(self) -> list[Anchor]: ...


class Claimed(BaseModel):
    """An object under the anchor prefix after a given sequence number, in key order: the sequence
    number its key claims, and its anchor (None when it holds something else: the number is
    burned, the chain goes on after it)."""

    seq: int
    key: str
    anchor: Anchor | None


def _taken(exc: Exception) -> bool:
    """Whether a failed conditional write says the key exists (412; 409 while another write of the
    key is under way)."""
    error = getattr(exc, "response", None) or {}
    code = str(error.get("Error", {}).get("Code", ""))
    return code in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def anchor_key(seq: int) -> str:
    return f"{ANCHOR_PREFIX}{seq:012d}.json"


class StoredAnchor(BaseModel):
    """One version of an object under the anchor prefix, as the bucket reports it."""

    key: str
    version_id: str
    last_modified: datetime
    lock_mode: str | None = None
    retain_until: datetime | None = None
    anchor: Anchor | None = None  # None: the object's content is not an anchor


class DeleteMarker(BaseModel):
    key: str
    version_id: str
    last_modified: datetime


class StoredAnchors(BaseModel):
    """Every version and delete marker under the anchor prefix, and the endpoint's Server header."""

    versions: list[StoredAnchor] = Field(default_factory=list)
    delete_markers: list[DeleteMarker] = Field(default_factory=list)
    server: str = ""

    def anchors(self) -> list[Anchor]:
        found = [v.anchor for v in self.versions if v.anchor is not None]
        return sorted(found, key=lambda a: (a.seq, a.time))


class S3Anchors:
    """Heads of the audit log in the object-locked bucket, one COMPLIANCE-locked object each."""

    def __init__(self, client: Any, bucket: str, retention_days: int) -> None:
        self.client, self.bucket, self.retention_days = client, bucket, retention_days

    def claim(self, anchor: Anchor) -> bool:
        """Write the anchor of a new record unless its key exists; False if another writer has it."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=anchor_key(anchor.seq),
                Body=anchor.model_dump_json().encode(),
                ContentType="application/json",
                ObjectLockMode=LOCK_MODE,
                ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=self.retention_days),
                IfNoneMatch="*",
            )
        except Exception as exc:  # botocore's ClientError; the core does not import botocore
            if _taken(exc):
                return False
            raise
        return True

    def after(self, seq: int) -> list[Claimed]:
        """The current objects under the anchor prefix whose keys come after ``seq``'s, in order."""
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=ANCHOR_PREFIX, StartAfter=anchor_key(seq)
        )
        for page in pages:
            for item in page.get("Contents", []):
                number = _key_seq(item["Key"])
                if number is None or number <= seq:
                    continue
                body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                anchor = _parse_anchor(body)
                valid = anchor is not None and anchor.seq == number
                found.append(Claimed(seq=number, key=item["Key"], anchor=anchor if valid else None))
        return found

    def all(self) -> list[Anchor]:
        """Every version of every anchor: an overwritten anchor keeps its locked earlier version."""
        return self.stored().anchors()

    def stored(self) -> StoredAnchors:
        """Every version (content and lock) and delete marker under the anchor prefix."""
        stored = StoredAnchors()
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=ANCHOR_PREFIX
        )
        for page in pages:
            stored.server = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("server", "")
            stored.versions += [self._version(item) for item in page.get("Versions", [])]
            stored.delete_markers += [
                DeleteMarker(key=i["Key"], version_id=i["VersionId"], last_modified=i["LastModified"])
                for i in page.get("DeleteMarkers", [])
            ]
        return stored

    def _version(self, item: dict[str, Any]) -> StoredAnchor:
        response = self.client.get_object(Bucket=self.bucket, Key=item["Key"], VersionId=item["VersionId"])
        return StoredAnchor(
            key=item["Key"],
            version_id=item["VersionId"],
            last_modified=item["LastModified"],
            lock_mode=response.get("ObjectLockMode"),
            retain_until=response.get("ObjectLockRetainUntilDate"),
            anchor=_parse_anchor(response["Body"].read()),
        )


def _key_seq(key: str) -> int | None:
    number = key.removeprefix(ANCHOR_PREFIX).removesuffix(".json")
    return int(number) if number.isdigit() and len(number) == 12 else None


def _parse_anchor(body: bytes) -> Anchor | None:
    try:
        return Anchor.model_validate_json(body)
    except ValidationError:
        return None


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def check_stored(stored: StoredAnchors, retention_days: int, now: datetime) -> list[str]:
    """Every way the stored anchors fail to prove what they claim (empty: they hold)."""
    problems: list[str] = []
    for version in stored.versions:
        problems += check_version(version, retention_days, now)
    return problems + check_history(stored) + check_order(stored.versions)


def check_version(version: StoredAnchor, retention_days: int, now: datetime) -> list[str]:
    where = f"anchor {version.key} (version {version.version_id})"
    anchor = version.anchor
    if anchor is None:
        return [f"{where} is not an anchor: something else was written under {ANCHOR_PREFIX}"]
    if version.key != anchor_key(anchor.seq):
        return [f"{where} holds the anchor of record {anchor.seq}: it was written under another key"]
    anchored_at = _parse_time(anchor.time)
    if anchored_at is None:
        return [f"{where} has no valid time ({anchor.time!r}); anchors carry their record's ISO 8601 time"]
    return check_lock(where, version.lock_mode, version.retain_until, anchored_at, retention_days, now) + (
        check_time(where, version.last_modified, anchored_at)
    )


def check_lock(
    where: str,
    mode: str | None,
    retain_until: datetime | None,
    anchored_at: datetime,
    retention_days: int,
    now: datetime,
) -> list[str]:
    """COMPLIANCE mode, retain-until in the future and at least the policy's retention from its time."""
    if mode != LOCK_MODE:
        return [
            f"{where} is locked in {mode or 'no'} mode, not COMPLIANCE: its lock was downgraded or "
            "removed, so it can be deleted or replaced (or this identity lacks s3:GetObjectRetention)"
        ]
    if retain_until is None:
        return [f"{where} is in COMPLIANCE mode without a retain-until date: nothing keeps it"]
    if retain_until <= now:
        return [f"{where}: its COMPLIANCE lock expired at {_at(retain_until)}; it no longer proves anything"]
    promised = anchored_at + timedelta(days=retention_days)
    if retain_until < promised - RESOLUTION:
        return [
            f"{where} is locked until {_at(retain_until)}, short of the {retention_days} days the policy "
            f"retains audit evidence from its record's time {_at(anchored_at)} ({_at(promised)}): "
            "its retention was shortened"
        ]
    return []


def check_time(where: str, last_modified: datetime, anchored_at: datetime) -> list[str]:
    """An anchor is stored after the record it anchors (within S3's clock skew and resolution)."""
    if last_modified < anchored_at - CLOCK_SKEW - RESOLUTION:
        return [
            f"{where} was stored at {_at(last_modified)}, before the record it anchors "
            f"({_at(anchored_at)}): it was not written by the append of that record"
        ]
    return []


def check_history(stored: StoredAnchors) -> list[str]:
    """One version per anchor key, no delete markers."""
    counts = Counter(v.key for v in stored.versions)
    problems = [
        f"anchor {key} has {count} versions: it was rewritten (the oldest version is the original)"
        for key, count in sorted(counts.items())
        if count > 1
    ]
    return problems + [
        f"anchor {m.key} has a delete marker (version {m.version_id}, at {_at(m.last_modified)}): "
        "someone deleted the anchor"
        for m in stored.delete_markers
    ]


def check_order(versions: list[StoredAnchor]) -> list[str]:
    """Taken in sequence order, anchors were first stored at non-decreasing times."""
    first: dict[int, datetime] = {}
    for version in versions:
        if version.anchor is not None and version.key == anchor_key(version.anchor.seq):
            seq = version.anchor.seq
            first[seq] = min(first.get(seq, version.last_modified), version.last_modified)
    return [
        f"anchor {seq} was stored at {_at(at)}, after anchor {later} ({_at(later_at)}): anchors are "
        f"written in sequence, so anchor {seq} was written again later"
        for (seq, at), (later, later_at) in pairwise(sorted(first.items()))
        if at > later_at
    ]


def check_bucket(bucket: str, versioning: str | None, object_lock: str | None) -> list[str]:
    """The bucket keeps every version and has Object Lock on."""
    problems = []
    if versioning != "Enabled":
        problems.append(
            f"bucket {bucket} has versioning {versioning or 'off'}: overwrites replace anchors; "
            "a bucket with Object Lock must keep versioning Enabled"
        )
    if object_lock != "Enabled":
        problems.append(f"bucket {bucket} has no Object Lock: its anchors can be deleted or replaced")
    return problems
