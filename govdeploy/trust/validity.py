"""The validity window of a signed statement (an approval or a submission), and bounded reading of
the tokens that carry statements.

A statement carries ``issued_at`` and ``expires_at``: ISO 8601 timestamps with a time zone. It holds
when it was issued no later than now plus a small clock skew, expires after now, and its window is
no longer than the policy allows. Every refusal is an ``ApprovalError`` naming the value and the fix.

A token is untrusted input (anyone who reaches the Prefect API can resume a run with any text), so
it is read with a size limit before decoding, as strict base64 of UTF-8 JSON, by pydantic's parser
(bounded nesting); anything else is refused, never an exception of another kind.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field, ValidationError

from govdeploy.errors import ApprovalError

# how far ahead of this machine's clock a signer's clock may be
DEFAULT_CLOCK_SKEW_SECONDS = 120
# room for any statement govdeploy makes (the longest reason included); checked before decoding
MAX_TOKEN_CHARS = 16_384
MAX_SHOWN_CHARS = 300

Signed = TypeVar("Signed", bound=BaseModel)
_WHITESPACE = re.compile(r"\s+")

# the fields every signed statement shares, bounded so that no token can carry a huge value
Nonce = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Timestamp = Annotated[str, Field(min_length=1, max_length=40)]
Signature = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


def new_nonce() -> str:
    return secrets.token_hex(16)


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def new_window(valid_minutes: int, now: datetime | None = None) -> tuple[str, str]:
    """``issued_at`` and ``expires_at`` of a statement made now, valid for ``valid_minutes``."""
    issued = now or now_utc()
    return iso(issued), iso(issued + timedelta(minutes=valid_minutes))


def shown(value: object) -> str:
    """``repr`` of a value from a token, cut short enough for a refusal reason or a record."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return f"<{type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…"


def clip(text: str) -> str:
    """Text from untrusted input made safe for a record: valid UTF-8, cut short."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= MAX_SHOWN_CHARS else safe[:MAX_SHOWN_CHARS] + "…"


def parse_time(what: str, name: str, value: str) -> datetime:
    """A timestamp of a statement, in UTC; ApprovalError when it is not ISO 8601 with a time zone."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ApprovalError(f"the {what}'s {name} {shown(value)} is not an ISO timestamp") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ApprovalError(f"the {what}'s issued_at/expires_at have no time zone; sign a new one")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ApprovalError(f"the {what}'s {name} {shown(value)} is out of range") from None


def check_window(
    what: str,
    issued_at: str,
    expires_at: str,
    max_minutes: int,
    *,
    skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
    check_expiry: bool = True,
    now: datetime | None = None,
) -> None:
    """ApprovalError unless the window is well formed, at most ``max_minutes`` long, not issued in the
    future (beyond ``skew_seconds``) and, with ``check_expiry``, not expired."""
    issued = parse_time(what, "issued_at", issued_at)
    expires = parse_time(what, "expires_at", expires_at)
    current = now or now_utc()
    if issued > current + timedelta(seconds=skew_seconds):
        raise ApprovalError(
            f"the {what} was issued at {issued_at}, in the future (this clock says {iso(current)}, "
            f"{skew_seconds} s of clock skew allowed); check the signer's clock and sign a new one"
        )
    if check_expiry and expires <= current:
        raise ApprovalError(f"the {what} expired at {expires_at}; sign a new one")
    if expires <= issued:
        raise ApprovalError(f"the {what} expires ({expires_at}) before it was issued ({issued_at})")
    if expires - issued > timedelta(minutes=max_minutes):
        raise ApprovalError(f"the {what} is valid for longer than the policy's {max_minutes} minutes")


def read_token(token: object, model: type[Signed], kind: str, fix: str) -> Signed:
    """The signed document a token carries; ApprovalError (``fix`` says how to make a good one) when
    it is too large, not base64url of UTF-8 JSON, or not a ``model`` document."""
    if not isinstance(token, str):
        raise ApprovalError(f"the input is not a signed {kind} (not text); {fix}")
    if len(token) > MAX_TOKEN_CHARS:
        raise ApprovalError(
            f"the input is not a signed {kind} ({len(token)} characters, over the limit of "
            f"{MAX_TOKEN_CHARS}); {fix}"
        )
    try:
        raw = base64.b64decode(_WHITESPACE.sub("", token).encode("ascii"), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ApprovalError(f"the input is not a signed {kind} (not base64url text); {fix}") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ApprovalError(f"the input is not a signed {kind} ({_first_problem(exc)}); {fix}") from None


def _first_problem(exc: ValidationError) -> str:
    for problem in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem["loc"])
        return f"{where}: {problem['msg']}" if where else str(problem["msg"])
    return "invalid"
