"""Retention of the I/O log: whole days past ``retention.io_log_days`` deleted in the bucket (every
version; never one under Object Lock) and in the local spool, each day audited; drift windows never
start before retention."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from govdeploy.config.policy import Policy, RetentionPolicy, load_policy
from govdeploy.config.settings import Settings
from govdeploy.errors import AuditError, DataError
from govdeploy.monitoring.retention import check_window_start, enforce, first_kept_day, overdue
from govdeploy.monitoring.window import window_bounds
from tests.conftest import CONFIG_DIR, free_port

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
BUCKET = "retention-test"
OLD, EDGE, RECENT = "20260830", "20260831", "20261129"  # 30 days: 20260831 is the first day kept
NAME = "010203000000-0123456789abcdef-00000001-00000000.jsonl.enc"


def _policy(days: int = 91) -> Policy:
    policy = load_policy(CONFIG_DIR / "policy.yaml")
    return policy.model_copy(update={"retention": RetentionPolicy(io_log_days=days)})


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, bucket=BUCKET)


def _put(client: Any, key: str, body: bytes = b"sealed", **lock: Any) -> None:
    client.put_object(Bucket=BUCKET, Key=key, Body=body, **lock)


def _keys(client: Any) -> list[str]:
    pages = client.get_paginator("list_object_versions").paginate(Bucket=BUCKET)
    return sorted(
        v["Key"] for page in pages for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
    )


def test_the_first_kept_day_is_the_day_of_now_minus_the_retention() -> None:
    assert f"{first_kept_day(NOW, 91):%Y%m%d}" == EDGE


def test_expired_days_go_in_every_version_locked_ones_and_other_prefixes_stay(
    s3: Any, settings: Settings
) -> None:
    _put(s3, f"iolog/{OLD}/{NAME}", b"v1")
    _put(s3, f"iolog/{OLD}/{NAME}", b"v2")  # a second version: retention deletes data, not just hides it
    _put(s3, f"iolog/{OLD}/other.jsonl.enc")
    s3.delete_object(Bucket=BUCKET, Key=f"iolog/{OLD}/other.jsonl.enc")  # hidden behind a delete marker
    locked = f"iolog/{OLD}/held.jsonl.enc"
    _put(s3, locked, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=NOW + timedelta(days=3650))
    _put(s3, f"iolog/{EDGE}/{NAME}")
    _put(s3, f"iolog/{RECENT}/{NAME}")
    _put(
        s3,
        "audit/anchors/000000000001.json",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=NOW + timedelta(days=3650),
    )
    recorded: list[tuple[str, dict[str, Any]]] = []

    report = enforce(settings, _policy(), NOW, client=s3, record=lambda a, p: recorded.append((a, p)))

    assert report.ok, report.problems
    assert _keys(s3) == sorted(
        ["audit/anchors/000000000001.json", locked, f"iolog/{EDGE}/{NAME}", f"iolog/{RECENT}/{NAME}"]
    )
    (day,) = report.deleted
    assert (day.where, day.day, day.count, day.bytes, day.delete_markers, day.locked) == (
        "bucket",
        OLD,
        3,
        10,
        1,
        1,
    )
    assert report.locked_keys and report.locked_keys[0].startswith(locked)
    assert recorded == [
        (
            "retention.deleted",
            {
                "where": "bucket",
                "day": OLD,
                "count": 3,
                "bytes": 10,
                "delete_markers": 1,
                "unshipped": 0,
                "locked": 1,
                "io_log_days": 91,
            },
        )
    ]


def test_a_dry_run_deletes_and_records_nothing(s3: Any, settings: Settings) -> None:
    _put(s3, f"iolog/{OLD}/{NAME}")
    recorded: list[Any] = []
    report = overdue(settings, _policy(), NOW, client=s3)
    assert [(d.day, d.count) for d in report.deleted] == [(OLD, 1)] and report.dry_run
    assert enforce(
        settings, _policy(), NOW, dry_run=True, client=s3, record=lambda *a: recorded.append(a)
    ).deleted
    assert _keys(s3) == [f"iolog/{OLD}/{NAME}"] and recorded == []


def test_the_local_spool_loses_expired_batches_markers_and_partials(settings: Settings) -> None:
    root = settings.state_dir / "iolog"
    for name in (OLD, RECENT):
        (root / name).mkdir(parents=True)
        (root / name / NAME).write_bytes(b"12345")
    unshipped = "020000000000-0123456789abcdef-00000002-20260830.jsonl.enc"
    (root / OLD / unshipped).write_bytes(b"123")
    (root / OLD / f"{unshipped}.unshipped").touch()
    (root / OLD / f"{NAME}.partial").touch()
    recorded: list[tuple[str, dict[str, Any]]] = []

    report = enforce(settings, _policy(), NOW, bucket=False, record=lambda a, p: recorded.append((a, p)))

    assert report.ok and not report.bucket_checked
    assert not (root / OLD).exists() and (root / RECENT / NAME).exists()
    (day,) = report.deleted
    assert (day.where, day.day, day.count, day.bytes, day.unshipped) == ("local", OLD, 2, 8, 1)
    assert [a for a, _ in recorded] == ["retention.deleted"]


def test_an_unreachable_bucket_is_a_problem_and_the_local_spool_is_still_enforced(settings: Settings) -> None:
    (settings.state_dir / "iolog" / OLD).mkdir(parents=True)
    (settings.state_dir / "iolog" / OLD / NAME).write_bytes(b"x")

    class Down:
        def get_paginator(self, _: str) -> Any:
            raise ConnectionError("endpoint down")

    report = enforce(settings, _policy(), NOW, client=Down(), record=lambda *_: None)
    assert not report.ok and "endpoint down" in report.problems[0]
    assert [d.where for d in report.deleted] == ["local"]


def test_a_drift_window_never_starts_before_retention() -> None:
    check_window_start(NOW - timedelta(days=89), 90, NOW)
    with pytest.raises(DataError, match=r"older than the I/O log's retention \(retention.io_log_days = 90"):
        check_window_start(NOW - timedelta(days=91), 90, NOW)
    with pytest.raises(DataError, match="retention"):
        window_bounds(24, None, "2020-01-01T00:00:00+00:00", io_log_days=90)
    start, _ = window_bounds(24, None, None, io_log_days=90)
    assert start > datetime.now(UTC) - timedelta(days=2)


def test_nothing_is_deleted_when_its_audit_record_cannot_be_written(s3: Any, settings: Settings) -> None:
    _put(s3, f"iolog/{OLD}/{NAME}")
    (settings.state_dir / "iolog" / OLD).mkdir(parents=True)
    (settings.state_dir / "iolog" / OLD / NAME).write_bytes(b"x")

    def unwritable(action: str, payload: dict[str, Any]) -> None:
        raise AuditError("the anchors' bucket is out of reach")

    report = enforce(settings, _policy(), NOW, client=s3, record=unwritable)
    assert len(report.problems) == 2 and all("out of reach" in p for p in report.problems)
    assert report.deleted == []
    assert _keys(s3) == [f"iolog/{OLD}/{NAME}"] and (settings.state_dir / "iolog" / OLD / NAME).exists()


def test_the_cli_dry_run_lists_the_days_and_fails_when_the_bucket_is_out_of_reach(tmp_path: Path) -> None:
    (tmp_path / "iolog" / OLD).mkdir(parents=True)
    (tmp_path / "iolog" / OLD / NAME).write_bytes(b"x")
    env = {
        "GOVDEPLOY_STATE_DIR": str(tmp_path),
        "GOVDEPLOY_CONFIG_DIR": str(CONFIG_DIR),
        "PATH": "/usr/bin:/bin",
    }
    env["GOVDEPLOY_S3_PORT"] = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "govdeploy", "retention", "enforce", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1 and f"would delete local {OLD}: 1 objects" in result.stdout
    assert result.stderr.startswith("retention enforce failed: bucket")
    assert (tmp_path / "iolog" / OLD / NAME).exists()
