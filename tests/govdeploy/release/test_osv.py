"""OSV records as the vulnerability gate reads them: CVSS scores, ratings, ranges and fixed versions."""

from __future__ import annotations

import pytest

from govdeploy.release.cvss import base_score, rating
from govdeploy.release.osv import OsvRecord, matches, normalize, severity


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N", 6.1),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H", 5.9),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 5.4),
        ("CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3),
        ("7.2", 7.2),
    ],
)
def test_cvss_base_scores_follow_the_specifications(vector: str, score: float) -> None:
    assert base_score(vector) == score


@pytest.mark.parametrize(
    "vector",
    ["CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "CVSS:3.1/AV:X/AC:L", "", "11"],
)
def test_unreadable_or_v4_vectors_have_no_score(vector: str) -> None:
    assert base_score(vector) is None


def test_ratings() -> None:
    assert [rating(s) for s in (0.0, 0.1, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0)] == [
        None,
        "LOW",
        "LOW",
        "MEDIUM",
        "MEDIUM",
        "HIGH",
        "HIGH",
        "CRITICAL",
        "CRITICAL",
    ]


def record(*events: dict[str, str], **extra: object) -> OsvRecord:
    return OsvRecord.model_validate(
        {
            "id": "GDTEST-1",
            "modified": "2026-11-30T00:00:00Z",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "Some_Package"},
                    "ranges": [{"type": "ECOSYSTEM", "events": list(events)}],
                }
            ],
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("version", "affected", "fixed"),
    [
        ("0.9", False, None),
        ("1.0", True, "1.4.2"),
        ("1.4.1", True, "1.4.2"),
        ("1.4.2", False, "2.0.1"),
        ("1.5", False, "2.0.1"),
        ("2.0.0rc1", False, "2.0.1"),
        ("2.0.0", True, "2.0.1"),
        ("2.0.1", False, None),
        ("3.0", True, None),
        ("3.2", True, None),
        ("3.2.1", False, None),
    ],
)
def test_ranges_open_at_introduced_and_close_at_fixed_or_after_last_affected(
    version: str, affected: bool, fixed: str | None
) -> None:
    advisory = record(
        {"introduced": "1.0"},
        {"fixed": "1.4.2"},
        {"introduced": "2.0.0"},
        {"fixed": "2.0.1"},
        {"introduced": "3.0"},
        {"last_affected": "3.2"},
    )
    found = matches(advisory, "some-package", version)
    assert (found is not None) == affected
    if found is not None:
        assert found.fixed == fixed


def test_package_names_are_compared_in_normal_form() -> None:
    advisory = record({"introduced": "0"})
    assert normalize("Some_Package") == normalize("some.package") == "some-package"
    assert matches(advisory, "SOME.package", "1.0") is not None
    assert matches(advisory, "some-packages", "1.0") is None


def test_an_unreadable_range_affects_every_version() -> None:
    found = matches(record({"introduced": "not a version!"}), "some-package", "1.0")
    assert found is not None and found.fixed is None and "cannot be compared" in found.note


def test_severity_is_the_highest_rating_the_record_carries() -> None:
    rated = record(
        {"introduced": "0"},
        database_specific={"severity": "MODERATE"},
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
    )
    assert severity(rated) == "HIGH"
    assert severity(record({"introduced": "0"}, database_specific={"severity": "moderate"})) == "MEDIUM"
    assert severity(record({"introduced": "0"})) is None
    v4_only = record(
        {"introduced": "0"},
        severity=[
            {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}
        ],
    )
    assert severity(v4_only) is None
