"""The validity window and token reading shared by approvals and submissions."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from govdeploy.errors import ApprovalError
from govdeploy.trust.validity import (
    MAX_SHOWN_CHARS,
    MAX_TOKEN_CHARS,
    check_window,
    clip,
    iso,
    new_window,
    read_token,
    shown,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def window(issued: timedelta, expires: timedelta, skew_seconds: int = 120, check_expiry: bool = True) -> None:
    check_window(
        "statement",
        iso(NOW + issued),
        iso(NOW + expires),
        60,
        skew_seconds=skew_seconds,
        check_expiry=check_expiry,
        now=NOW,
    )


def test_a_new_window_starts_now_and_lasts_its_minutes() -> None:
    issued, expires = new_window(30, NOW)
    assert (issued, expires) == ("2026-11-29T12:00:00+00:00", "2026-11-29T12:30:00+00:00")
    check_window("statement", issued, expires, 30, now=NOW)


@pytest.mark.parametrize(
    ("issued", "expires", "reason"),
    [
        (timedelta(minutes=3), timedelta(minutes=30), "in the future (this clock says 2026-11-29T12:00:00"),
        (timedelta(days=30), timedelta(days=30, minutes=30), "120 s of clock skew allowed"),
        (timedelta(minutes=-40), timedelta(seconds=0), "expired at 2026-11-29T12:00:00+00:00"),
        (timedelta(minutes=-1), timedelta(minutes=-2), "expired at"),
        (timedelta(minutes=1), timedelta(seconds=30), "before it was issued"),
        (timedelta(0), timedelta(minutes=61), "valid for longer than the policy's 60 minutes"),
    ],
)
def test_windows_that_do_not_hold_now_are_refused(issued: timedelta, expires: timedelta, reason: str) -> None:
    with pytest.raises(ApprovalError) as refused:
        window(issued, expires)
    assert reason in str(refused.value)


def test_the_skew_and_the_expiry_check_are_options() -> None:
    window(timedelta(minutes=1), timedelta(minutes=30))  # within the default 120 s
    with pytest.raises(ApprovalError, match="0 s of clock skew allowed"):
        window(timedelta(minutes=1), timedelta(minutes=30), skew_seconds=0)
    window(timedelta(days=-3), timedelta(days=-3, minutes=30), check_expiry=False)  # a past release
    with pytest.raises(ApprovalError, match="in the future"):
        window(timedelta(days=3), timedelta(days=3, minutes=30), check_expiry=False)


@pytest.mark.parametrize(
    ("issued_at", "expires_at", "reason"),
    [
        ("2026-11-29T12:00:00", "2026-11-29T12:30:00+00:00", "no time zone"),
        ("2026-11-29T12:00:00+00:00", "2026-11-29T12:30:00", "no time zone"),
        ("2026-11-29", "2026-11-29T12:30:00+00:00", "no time zone"),
        ("noon", "2026-11-29T12:30:00+00:00", "issued_at 'noon' is not an ISO timestamp"),
        ("2026-11-29T12:00:00+00:00", "x" * 500, "is not an ISO timestamp"),
        ("0001-01-01T00:00:00+14:00", "0001-01-01T00:10:00+14:00", "is out of range"),
        ("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59-14:00", "is out of range"),
    ],
)
def test_malformed_timestamps_are_refused(issued_at: str, expires_at: str, reason: str) -> None:
    with pytest.raises(ApprovalError) as refused:
        check_window("statement", issued_at, expires_at, 60, now=NOW)
    assert reason in str(refused.value)
    assert len(str(refused.value)) < 2 * MAX_SHOWN_CHARS + 200


class Doc(BaseModel):
    value: int


def encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_a_token_is_read_as_base64url_json_of_its_document() -> None:
    assert read_token(encoded(b'{"value": 3}'), Doc, "doc token", "fix it").value == 3
    assert read_token(" " + encoded(b'{"value": 3}') + "\n", Doc, "doc token", "fix it").value == 3


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "not text"),
        (
            "A" * (MAX_TOKEN_CHARS + 1),
            f"{MAX_TOKEN_CHARS + 1} characters, over the limit of {MAX_TOKEN_CHARS}",
        ),
        ("abc", "not base64url text"),
        ("ab€d", "not base64url text"),
        (encoded(b"\xc3\x28"), "Invalid JSON"),
        (encoded(b"[" * 300 + b"]" * 300), "recursion limit exceeded"),
        (encoded(b'{"value": "three"}'), "value: Input should be a valid integer"),
        (encoded(b"{}"), "value: Field required"),
    ],
)
def test_anything_else_is_refused_with_the_fix(token: object, reason: str) -> None:
    with pytest.raises(ApprovalError) as refused:
        read_token(token, Doc, "doc token", "fix it")
    message = str(refused.value)
    assert message.startswith("the input is not a signed doc token (") and message.endswith("; fix it")
    assert reason in message


def test_values_from_tokens_are_cut_short_and_safe_to_record() -> None:
    assert shown("x" * 1000).endswith("…") and len(shown("x" * 1000)) == MAX_SHOWN_CHARS + 1
    assert shown(10**5000) == "<int>"
    assert clip("\ud800bad").encode("utf-8") == b"\\ud800bad"
    assert clip("dana") == "dana"
