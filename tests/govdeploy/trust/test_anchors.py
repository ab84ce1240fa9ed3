"""What a stored anchor must show to count: its lock, retention, time and history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from govdeploy.trust.anchors import (
    Anchor,
    DeleteMarker,
    StoredAnchor,
    StoredAnchors,
    anchor_key,
    check_bucket,
    check_history,
    check_lock,
    check_order,
    check_stored,
    check_time,
    check_version,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, 400_000, tzinfo=UTC)  # a record's time, to the microsecond
DAYS = 2555
NOW = T0 + timedelta(days=30)


def stored(
    seq: int,
    *,
    at: datetime = T0,
    stored_at: datetime | None = None,
    mode: str | None = "COMPLIANCE",
    retain: datetime | None = None,
    key: str | None = None,
    version: str = "v1",
) -> StoredAnchor:
    """An anchor of record ``seq`` as a faithful append stores it, unless told otherwise."""
    return StoredAnchor(
        key=key or anchor_key(seq),
        version_id=version,
        last_modified=(stored_at or at).replace(microsecond=0),
        lock_mode=mode,
        retain_until=retain or (at + timedelta(days=DAYS)).replace(microsecond=0),
        anchor=Anchor(seq=seq, hash=f"{seq:064x}", time=at.isoformat()),
    )


def test_a_faithful_anchor_passes_every_check() -> None:
    # stored to the second, retain-until truncated to the second: both may fall below the record's time
    assert check_version(stored(1), DAYS, NOW) == []
    assert (
        check_stored(StoredAnchors(versions=[stored(1), stored(2, at=T0 + timedelta(seconds=1))]), DAYS, NOW)
        == []
    )


@pytest.mark.parametrize("mode", ["GOVERNANCE", None])
def test_a_lock_that_is_not_compliance_is_a_problem(mode: str | None) -> None:
    (problem,) = check_version(stored(1, mode=mode), DAYS, NOW)
    assert f"is locked in {mode or 'no'} mode, not COMPLIANCE" in problem
    assert problem.startswith("anchor audit/anchors/000000000001.json (version v1)")


def test_compliance_without_a_retain_until_date_is_a_problem() -> None:
    assert check_lock("anchor 1", "COMPLIANCE", None, T0, DAYS, NOW) == [
        "anchor 1 is in COMPLIANCE mode without a retain-until date: nothing keeps it"
    ]


def test_an_expired_lock_is_a_problem() -> None:
    (problem,) = check_lock("anchor 1", "COMPLIANCE", NOW - timedelta(seconds=1), T0, 1, NOW)
    assert "its COMPLIANCE lock expired at 2026-01-31T11:59:59+00:00; it no longer proves anything" in problem


def test_a_retention_shorter_than_the_policy_from_the_anchor_time_is_a_problem() -> None:
    shortened = T0 + timedelta(days=DAYS) - timedelta(seconds=2)
    (problem,) = check_lock("anchor 1", "COMPLIANCE", shortened, T0, DAYS, NOW)
    assert "short of the 2555 days the policy retains audit evidence from its record's time" in problem
    assert problem.endswith("its retention was shortened")
    # within the second S3 truncates to, it holds; longer than promised is fine
    assert check_lock("anchor 1", "COMPLIANCE", shortened + timedelta(seconds=1), T0, DAYS, NOW) == []
    assert check_lock("anchor 1", "COMPLIANCE", T0 + timedelta(days=9000), T0, DAYS, NOW) == []


def test_an_anchor_stored_before_its_record_is_a_problem() -> None:
    assert check_time("anchor 1", T0 - timedelta(minutes=15), T0) == []  # S3's accepted clock skew
    (problem,) = check_time("anchor 1", T0 - timedelta(minutes=16), T0)
    assert "was stored at 2026-01-01T11:44:00+00:00, before the record it anchors" in problem


def test_an_object_that_is_not_an_anchor_or_under_another_key_is_a_problem() -> None:
    foreign = stored(1).model_copy(update={"anchor": None})
    assert (
        "is not an anchor: something else was written under audit/anchors/"
        in check_version(foreign, DAYS, NOW)[0]
    )
    moved = stored(1, key=anchor_key(2))
    assert (
        "holds the anchor of record 1: it was written under another key" in check_version(moved, DAYS, NOW)[0]
    )
    timeless = stored(1).model_copy(update={"anchor": Anchor(seq=1, hash="0" * 64, time="yesterday")})
    assert "has no valid time ('yesterday')" in check_version(timeless, DAYS, NOW)[0]


def test_a_second_version_and_a_delete_marker_are_problems() -> None:
    marker = DeleteMarker(key=anchor_key(1), version_id="d1", last_modified=T0 + timedelta(days=1))
    history = StoredAnchors(versions=[stored(1), stored(1, version="v2")], delete_markers=[marker])
    assert check_history(history) == [
        "anchor audit/anchors/000000000001.json has 2 versions: it was rewritten (the oldest version is the original)",
        "anchor audit/anchors/000000000001.json has a delete marker (version d1, at 2026-01-02T12:00:00+00:00): "
        "someone deleted the anchor",
    ]


def test_an_anchor_stored_after_the_next_one_is_a_problem() -> None:
    later = T0 + timedelta(minutes=5)
    versions = [stored(1), stored(2, stored_at=later), stored(3, at=T0 + timedelta(seconds=1))]
    assert check_order(versions) == [
        "anchor 2 was stored at 2026-01-01T12:05:00+00:00, after anchor 3 (2026-01-01T12:00:01+00:00): "
        "anchors are written in sequence, so anchor 2 was written again later"
    ]
    # the same second (S3's resolution) is in order; a second version does not hide the original
    assert check_order([stored(1), stored(2), stored(2, version="v2", stored_at=later)]) == []


def test_every_problem_of_the_stored_anchors_is_listed() -> None:
    replaced = stored(2, mode="GOVERNANCE", stored_at=T0 + timedelta(hours=1))
    problems = check_stored(StoredAnchors(versions=[stored(1), replaced, stored(3)]), DAYS, NOW)
    assert len(problems) == 2
    assert "GOVERNANCE mode" in problems[0] and "after anchor 3" in problems[1]


def test_stored_anchors_are_listed_in_sequence_order() -> None:
    versions = [stored(2), stored(1), stored(1, version="v2").model_copy(update={"anchor": None})]
    assert [a.seq for a in StoredAnchors(versions=versions).anchors()] == [1, 2]


def test_the_bucket_keeps_versions_and_object_lock() -> None:
    assert check_bucket("b", "Enabled", "Enabled") == []
    assert check_bucket("b", "Suspended", None) == [
        "bucket b has versioning Suspended: overwrites replace anchors; a bucket with Object Lock must "
        "keep versioning Enabled",
        "bucket b has no Object Lock: its anchors can be deleted or replaced",
    ]
