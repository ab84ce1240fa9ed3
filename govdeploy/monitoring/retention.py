"""Retention of the I/O log: records and feedback older than the policy's ``retention.io_log_days``
are deleted, whole days at a time, in the bucket and in the gateway's local spool.

A day ``D`` (``iolog/<D>/`` in the bucket, ``<state>/iolog/<D>/`` locally) is past retention when
every moment of it is: ``D`` before the day of ``now - io_log_days``. A batch holds only records
written before it, so deleting a day never removes a record of a later day, and a drift window that
starts within retention (``check_window_start``) reads no deleted day.

In the bucket every version of every object under an expired day's prefix is deleted (the bucket is
versioned: a plain delete would only hide the data behind a delete marker), and the delete markers
with them. A version under Object Lock (a retention date still ahead, or a legal hold) is never
touched: it is kept and reported. Locally the day's batch files, their shipping markers and any
torn ``.partial`` file go; a batch that was never shipped goes too (it is past retention as well),
and is counted. Each day is recorded in the audit trail (``retention.deleted``: where, day, count,
bytes) before its deletion: when the record cannot be written nothing of the day is deleted, and a
deletion that fails midway is finished by the next run (and recorded again).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from govdeploy.config.policy import Policy
from govdeploy.config.settings import Settings
from govdeploy.errors import DataError, GovdeployError, StorageError
from govdeploy.monitoring.iorecords import BATCH_SUFFIX, IOLOG_PREFIX, PARTIAL_SUFFIX
from govdeploy.monitoring.ioship import UNSHIPPED_SUFFIX

DAY = re.compile(r"\d{8}")
DELETE_CHUNK = 1000  # versions per DeleteObjects request (the S3 maximum)
AUDIT_ACTION = "retention.deleted"
Where = Literal["bucket", "local"]
Record = Callable[[str, dict[str, Any]], None]  # (action, payload) into the audit trail


@dataclass(frozen=True)
class DayDeletion:
    """What was (or, in a dry run, would be) deleted of one day of the I/O log in one place."""

    where: Where
    day: str  # YYYYMMDD
    count: int  # bucket: object versions; local: batch files
    bytes: int
    delete_markers: int = 0  # bucket: delete markers removed with the versions
    unshipped: int = 0  # local: batches deleted that the bucket never had
    locked: int = 0  # bucket: versions kept under Object Lock


@dataclass
class RetentionReport:
    """The outcome of one enforcement: days deleted per place, versions kept under lock, failures."""

    io_log_days: int
    first_kept_day: str  # YYYYMMDD: every day before it is past retention
    dry_run: bool
    bucket_checked: bool = True
    deleted: list[DayDeletion] = field(default_factory=list)
    locked_keys: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def first_kept_day(now: datetime, days: int) -> date:
    """The oldest day still within retention: every day before it is past ``days``."""
    return (now.astimezone(UTC) - timedelta(days=days)).date()


def check_window_start(start: datetime, io_log_days: int, now: datetime | None = None) -> None:
    """DataError when a drift window starts before the I/O log's retention: its older records are
    deleted (or due to be), so the window would silently miss them."""
    limit = (now or datetime.now(UTC)) - timedelta(days=io_log_days)
    if start < limit:
        raise DataError(
            f"the window start {start.isoformat(timespec='seconds')} is older than the I/O log's retention "
            f"(retention.io_log_days = {io_log_days} in the policy: records before "
            f"{limit.isoformat(timespec='seconds')} are deleted); start the window after that time"
        )


def expired_days(days: Iterator[str] | list[str], first_kept: date) -> list[str]:
    """The YYYYMMDD names among ``days`` that are past retention, oldest first."""
    limit = f"{first_kept:%Y%m%d}"
    return sorted(day for day in days if DAY.fullmatch(day) and day < limit)


# --- the bucket -------------------------------------------------------------------------------


def bucket_days(client: Any, bucket: str) -> list[str]:
    """The day prefixes under ``iolog/`` in the bucket (current objects or old versions alike)."""
    found: set[str] = set()
    pages = client.get_paginator("list_object_versions").paginate(
        Bucket=bucket, Prefix=IOLOG_PREFIX, Delimiter="/"
    )
    for page in pages:
        for prefix in page.get("CommonPrefixes", []):
            found.add(prefix["Prefix"].removeprefix(IOLOG_PREFIX).rstrip("/"))
    return sorted(found)


def _locked(client: Any, bucket: str, key: str, version: str, now: datetime) -> bool:
    """Whether Object Lock protects the version now (a retention date ahead, or a legal hold)."""
    head = client.head_object(Bucket=bucket, Key=key, VersionId=version)
    until = head.get("ObjectLockRetainUntilDate")
    held = head.get("ObjectLockLegalHoldStatus") == "ON"
    return held or (head.get("ObjectLockMode") is not None and (until is None or until > now))


def bucket_day(
    client: Any, bucket: str, day: str, now: datetime
) -> tuple[DayDeletion, list[dict[str, str]], list[str]]:
    """What goes of ``iolog/<day>/``: every version and delete marker but the versions under Object
    Lock; the day's tally, the versions to delete (``delete_versions``) and the keys kept locked."""
    prefix = f"{IOLOG_PREFIX}{day}/"
    doomed: list[dict[str, str]] = []
    kept: list[str] = []
    size = markers = 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Versions", []):
            if _locked(client, bucket, item["Key"], item["VersionId"], now):
                kept.append(f"{item['Key']} (version {item['VersionId']})")
                continue
            doomed.append({"Key": item["Key"], "VersionId": item["VersionId"]})
            size += int(item.get("Size", 0))
        for item in page.get("DeleteMarkers", []):
            doomed.append({"Key": item["Key"], "VersionId": item["VersionId"]})
            markers += 1
    tally = DayDeletion("bucket", day, len(doomed) - markers, size, delete_markers=markers, locked=len(kept))
    return tally, doomed, kept


def delete_versions(client: Any, bucket: str, doomed: list[dict[str, str]]) -> None:
    for at in range(0, len(doomed), DELETE_CHUNK):
        chunk = doomed[at : at + DELETE_CHUNK]
        answer = client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise StorageError(
                f"{len(errors)} versions under s3://{bucket}/{chunk[0]['Key'].rsplit('/', 1)[0]}/ could not "
                f"be deleted, e.g. {first.get('Key')} ({first.get('Code')}: {first.get('Message')})"
            )


# --- the gateway's local spool ----------------------------------------------------------------


def local_days(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir())


def local_day(root: Path, day: str) -> tuple[DayDeletion, list[Path]]:
    """What goes of the day's directory: its batch files, shipping markers and torn partial files
    (other files stay, and so does the directory then); the tally and the files."""
    directory = root / day
    entries = list(directory.iterdir())
    batches = [p for p in entries if p.name.endswith(BATCH_SUFFIX)]
    markers = [p for p in entries if p.name.endswith(BATCH_SUFFIX + UNSHIPPED_SUFFIX)]
    partials = [p for p in entries if p.name.endswith(PARTIAL_SUFFIX)]
    marked = {m.name.removesuffix(UNSHIPPED_SUFFIX) for m in markers}
    unshipped = sum(1 for batch in batches if batch.name in marked)
    size = sum(p.stat().st_size for p in batches)
    return DayDeletion("local", day, len(batches), size, unshipped=unshipped), [*batches, *markers, *partials]


def delete_files(directory: Path, paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
    if not any(directory.iterdir()):
        directory.rmdir()


# --- enforcement ------------------------------------------------------------------------------


def enforce(
    settings: Settings,
    policy: Policy,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    bucket: bool = True,
    client: Any = None,
    record: Record | None = None,
) -> RetentionReport:
    """Delete the I/O log's days past ``retention.io_log_days`` in the bucket (unless ``bucket`` is
    false) and under ``<state>/iolog``; record each day deleted in the audit trail. A place that
    fails is a problem of the report, and the other place is still enforced."""
    moment = now or datetime.now(UTC)
    kept = first_kept_day(moment, policy.retention.io_log_days)
    report = RetentionReport(policy.retention.io_log_days, f"{kept:%Y%m%d}", dry_run, bucket_checked=bucket)
    audit = None if dry_run else (record or _audit_recorder(settings, policy))
    if bucket:
        _enforce_bucket(settings, report, kept, moment, client, audit)
    root = settings.state_dir / "iolog"
    try:
        for day in expired_days(local_days(root), kept):
            tally, paths = local_day(root, day)
            _note(report, tally, audit)
            if not dry_run:
                delete_files(root / day, paths)
    except (OSError, GovdeployError) as exc:  # a file that cannot go, or an audit record not written
        report.problems.append(f"local I/O log {root}: {type(exc).__name__}: {exc}")
    return report


def _enforce_bucket(
    settings: Settings, report: RetentionReport, kept: date, now: datetime, client: Any, audit: Record | None
) -> None:
    try:
        if client is None:
            from govdeploy.backends.storage import s3_client

            client = s3_client(settings)
        for day in expired_days(bucket_days(client, settings.bucket), kept):
            tally, doomed, locked = bucket_day(client, settings.bucket, day, now)
            report.locked_keys += locked
            _note(report, tally, audit)
            if not report.dry_run:
                delete_versions(client, settings.bucket, doomed)
    except Exception as exc:  # botocore's errors (only the backends import botocore), or the audit's
        report.problems.append(f"bucket {settings.bucket}: {type(exc).__name__}: {exc}")


def _note(report: RetentionReport, tally: DayDeletion, audit: Record | None) -> None:
    """Record the day's deletion in the audit trail (before it happens), then in the report."""
    if audit is not None and (tally.count or tally.delete_markers):
        audit(AUDIT_ACTION, {**asdict(tally), "io_log_days": report.io_log_days})
    report.deleted.append(tally)


def _audit_recorder(settings: Settings, policy: Policy) -> Record:
    from govdeploy.trust.audit_trail import audit_log

    log = audit_log(settings, policy.retention.audit_days)

    def append(action: str, payload: dict[str, Any]) -> None:
        log.append(action, settings.user, payload, policy_digest=policy.digest)

    return append


def overdue(
    settings: Settings,
    policy: Policy,
    now: datetime | None = None,
    *,
    bucket: bool = True,
    client: Any = None,
) -> RetentionReport:
    """What enforcement would delete now (a dry run): data past retention still present."""
    return enforce(settings, policy, now, dry_run=True, bucket=bucket, client=client)
