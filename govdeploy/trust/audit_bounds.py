"""Field caps of audit records: every value as JSON types, within a fixed size.

Appending must work whatever a caller passes (a 1 MB approver name, a kill reason of any length, a
cyclic or very deep structure, text that is not valid UTF-8), and a record must still prove what it
saw. So text too long is cut and marked with how many characters were cut and the sha256 of the
full value; wide or deep structures are summarised the same way (``bounded``, ``cap_text``).
Sizes are measured in the canonical JSON form that records are hashed and signed in.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

FIELD_CHARS = 256  # actor, action, model, version, policy digest
PAYLOAD_BYTES = 32_768  # canonical JSON of a payload, once capped
SENSITIVE_BYTES = 8_192  # personal data, capped before it is sealed
LEVELS = ((4096, 256, 8), (1024, 64, 6), (256, 16, 4), (64, 8, 3))  # (characters, items, depth)
MAX_DEPTH, MAX_VALUES = 32, 100_000  # what is looked at in one payload at all
CUT = "[cut]"  # the key that says what was cut from a mapping


def canonical(data: Any) -> bytes:
    """The canonical JSON bytes that are hashed and signed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _utf8(text: str) -> str:
    """``text`` with lone surrogates escaped, so that it encodes as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def cap_text(text: str, limit: int = FIELD_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked with what was cut and the sha256 of the whole."""
    text = _utf8(text)
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"{text[:limit]}…[cut {cut} of {len(text)} characters; sha256 {_sha256(text.encode())}]"


class _Plain:
    """Any value as JSON types: valid UTF-8 text, finite floats, 64-bit integers, string keys."""

    def __init__(self) -> None:
        self.left = MAX_VALUES

    def __call__(self, value: Any, path: tuple[int, ...] = ()) -> Any:
        self.left -= 1
        if value is None or isinstance(value, bool | str):
            return _utf8(value) if isinstance(value, str) else value
        if isinstance(value, int):
            return value if value.bit_length() < 64 else hex(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if not isinstance(value, Mapping | list | tuple | set | frozenset):
            return _utf8(_text_of(value))
        limit = "cycle" if id(value) in path else "depth" if len(path) >= MAX_DEPTH else ""
        if limit or self.left < 0:
            return f"[{type(value).__name__} not recorded: {limit or 'size'} limit]"
        inner = (*path, id(value))
        if isinstance(value, Mapping):
            return {_utf8(_text_of(k)): self(v, inner) for k, v in value.items()}
        return [self(v, inner) for v in value]


def _text_of(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ of a caller's object must not stop the record
        return f"<{type(value).__name__}>"


def _summary(value: dict[str, Any] | list[Any], what: str) -> str:
    return f"[{what} of {len(value)} items; sha256 {_sha256(canonical(value))}]"


def _fit(value: Any, chars: int, items: int, depth: int) -> Any:
    if isinstance(value, str):
        return cap_text(value, chars)
    if not isinstance(value, dict | list):
        return value
    if depth == 0:
        return _summary(value, f"{'object' if isinstance(value, dict) else 'list'} beyond the depth limit")
    cut = f"cut {len(value) - items}" if len(value) > items else ""
    if isinstance(value, list):
        kept = [_fit(v, chars, items, depth - 1) for v in value[:items]]
        return kept + ([_summary(value, f"{cut} of a list")] if cut else [])
    fitted = {cap_text(k, chars): _fit(v, chars, items, depth - 1) for k, v in list(value.items())[:items]}
    return fitted | ({CUT: _summary(value, f"{cut} of an object")} if cut else {})


def bounded(data: Mapping[str, Any], budget: int = PAYLOAD_BYTES) -> dict[str, Any]:
    """``data`` as JSON types within ``budget`` bytes of canonical JSON, cut as little as it takes:
    long text cut, wide or deep structures summarised, each cut marked with the sha256 of what it
    replaced; as a last resort the whole is replaced by its size and sha256."""
    plain: dict[str, Any] = _Plain()(data)
    if len(canonical(plain)) <= budget:
        return plain
    for chars, items, depth in LEVELS:
        fitted: dict[str, Any] = _fit(plain, chars, items, depth)
        if len(canonical(fitted)) <= budget:
            return fitted
    whole = canonical(plain)
    return {CUT: f"[{len(whole)} bytes over the {budget}-byte limit; sha256 {_sha256(whole)}]"}
