"""Approvers' public keys (``config/approvers.yaml``), with their dates, and which one signed a
statement.

An approver may have several keys after a rotation (``govdeploy keys rotate --role approver``): a
statement (approval or submission) verifies only under a key of its signer that could sign at the
statement's ``issued_at``. A key retired at T keeps verifying the statements issued before T; one
issued after T and signed with it is refused, naming the key and its retirement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from govdeploy.config.approvers import ApproverKey, Approvers
from govdeploy.errors import ApprovalError, ConfigError
from govdeploy.trust.audit_bounds import canonical
from govdeploy.trust.key_dates import DatedKey, parse_moment, signer_at
from govdeploy.trust.keys import load_ed25519_public, read_public


def _loaded(approver_id: str, entry: ApproverKey, keys_dir: Path) -> DatedKey:
    what = f"public key of approver {approver_id!r}"
    if entry.public_key is not None:
        key = load_ed25519_public(entry.public_key.encode(), what)
        return DatedKey(key, f"approvers.yaml {approver_id} inline public_key", entry.dates())
    path = keys_dir / str(entry.public_key_file)
    return DatedKey(load_ed25519_public(read_public(path, what), str(path)), str(path), entry.dates())


def approver_key_ring(approvers: Approvers, approver_id: str, keys_dir: Path) -> list[DatedKey]:
    """The keys of an approver trusted now (retired ones included, for what they signed before), the
    one that signs now first; ConfigError for an unknown approver or an unreadable key."""
    now = datetime.now(UTC)
    entries = [e for e in approvers.get(approver_id).key_entries() if e.trusted_at(now)]
    if not entries:
        raise ConfigError(
            f"approver {approver_id!r} has no key trusted now (each is past its valid_until); add a "
            "current key to the approver's keys in approvers.yaml"
        )
    entries.sort(key=lambda e: not e.signs_at(now))
    return [_loaded(approver_id, entry, keys_dir) for entry in entries]


def approver_keys(approvers: Approvers, keys_dir: Path) -> dict[str, list[DatedKey]]:
    """Every approver's keys; ConfigError when one key is registered under two ids."""
    keys = {
        approver_id: approver_key_ring(approvers, approver_id, keys_dir)
        for approver_id in approvers.approvers
    }
    seen: dict[bytes, str] = {}
    for approver_id, ring in keys.items():
        for key in ring:
            raw = key.key.public_bytes_raw()
            if seen.get(raw, approver_id) != approver_id:
                raise ConfigError(
                    f"approvers {seen[raw]!r} and {approver_id!r} have the same public key; one key "
                    "counts once in a quorum: give each person their own key in approvers.yaml"
                )
            seen[raw] = approver_id
    return keys


def statement_signer(
    keys: list[DatedKey], statement: BaseModel, signature: str, issued_at: str, refusal: str
) -> DatedKey:
    """The key of ``keys`` that signed ``statement`` and could sign at its ``issued_at``;
    ApprovalError(``refusal``) when none signed it, or naming the key and why it could not sign then
    (a retired key signs nothing new)."""
    found = signer_at(keys, signature, canonical(statement.model_dump()), parse_moment(issued_at))
    if found.key is not None:
        return found.key
    if found.refusal:
        raise ApprovalError(
            f"the statement is refused: {found.refusal}; sign a new statement with the current key "
            "listed in approvers.yaml"
        )
    raise ApprovalError(refusal)
