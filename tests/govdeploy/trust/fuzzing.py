"""Hypothesis strategies for untrusted tokens: arbitrary text and bytes, JSON of any shape, and
statements that are validly signed yet wrong in one or more fields (so that fuzzing reaches the
checks behind the signature: time zones, windows, roles, duties)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from govdeploy.trust.audit import canonical
from govdeploy.trust.keys import load_ed25519_private

PEOPLE = ("alice", "bob", "dana", "erin")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
zones = st.none() | st.just(UTC) | offsets.map(timezone)
near_now = st.timedeltas(min_value=-timedelta(days=2), max_value=timedelta(days=40))
timestamps = st.one_of(
    st.datetimes(timezones=zones).map(lambda d: d.isoformat()),
    st.tuples(near_now, zones).map(lambda p: (datetime.now(UTC) + p[0]).astimezone(p[1]).isoformat()),
    st.tuples(near_now, zones).map(lambda p: (datetime.now(UTC) + p[0]).replace(tzinfo=p[1]).isoformat()),
    st.text(max_size=40),
)
names = st.sampled_from((*PEOPLE, "mallory")) | st.text(max_size=20)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def overrides(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Changes to a valid statement: some fields replaced by plausible or arbitrary values, maybe
    an extra field, maybe none at all (the statement stays valid)."""
    keyed = {name: strategy | json_values for name, strategy in fields.items()}
    return st.fixed_dictionaries({}, optional={**keyed, "extra": json_values})


def signed_token(keys_dir: Path, statement: dict[str, Any], signer: str) -> str:
    """The token of a statement document signed with ``signer``'s real key (over its canonical
    bytes, as a well-behaved signer would)."""
    key = load_ed25519_private(keys_dir / "approvers" / f"{signer}.key")
    signature = base64.b64encode(key.sign(canonical(statement))).decode()
    return b64(json.dumps({"statement": statement, "signature": signature}).encode())


def mutated(token: str, position: int, insert: str, cut: int) -> str:
    """``token`` with ``cut`` characters replaced by ``insert`` at ``position``."""
    at = position % (len(token) + 1)
    return token[:at] + insert + token[at + cut :]


garbage = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(b64),
    json_values.map(lambda v: b64(json.dumps(v).encode())),
    st.integers(1, 3000).map(lambda n: b64(b"[" * n + b"]" * n)),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)
