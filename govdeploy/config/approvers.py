"""Approver identities, ``config/approvers.yaml``: roles and Ed25519 public keys (loaded by
``govdeploy.trust.approver_keys``).

An approver has one key (``public_key``, an inline PEM, or ``public_key_file``, relative to the keys
directory: a key without dates, valid at any time) or, once rotated, a list ``keys`` of such keys
each with optional dates, as in ``trust.yaml`` (``valid_from``, ``retired_at``, ``valid_until``): a
statement verifies only under a key of its signer that could sign at the statement's ``issued_at``,
so a retired key keeps verifying what it signed before its retirement and nothing issued after it.
``govdeploy keys rotate --role approver --approver ID`` writes such a list.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import EmailStr, Field, model_validator

from govdeploy.config.files import StrictModel, load_yaml, parse_model
from govdeploy.config.trust import DATES, KeyDates
from govdeploy.errors import ConfigError


class ApproverKey(KeyDates):
    """One public key of an approver, with its dates."""

    public_key: str | None = None
    public_key_file: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> ApproverKey:
        if (self.public_key is None) == (self.public_key_file is None):
            raise ValueError("give exactly one of public_key (inline PEM) and public_key_file")
        return self

    @property
    def name(self) -> str:
        return self.public_key_file or "inline public_key"


class ApproverSpec(StrictModel):
    name: str = Field(min_length=1)
    email: EmailStr
    roles: list[str] = Field(min_length=1)
    public_key: str | None = None
    public_key_file: str | None = None
    keys: list[ApproverKey] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_key(self) -> ApproverSpec:
        given = [self.public_key is not None, self.public_key_file is not None, self.keys is not None]
        if sum(given) != 1:
            raise ValueError(
                "give exactly one of public_key (inline PEM), public_key_file and keys (a list of keys "
                "with dates)"
            )
        return self

    def key_entries(self) -> list[ApproverKey]:
        """Every key of the approver: the single undated key, or the ``keys`` list."""
        if self.keys is not None:
            return list(self.keys)
        return [ApproverKey(public_key=self.public_key, public_key_file=self.public_key_file)]


def _inline(key: ApproverKey) -> str | None:
    return "".join((key.public_key or "").split()) or None


class Approvers(StrictModel):
    """One id per person and per key: a quorum counts people, so neither may appear twice."""

    approvers: dict[str, ApproverSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_id_per_person(self) -> Approvers:
        for field, values in (
            ("email", lambda a: [str(a.email).casefold()]),
            ("public_key", lambda a: [_inline(k) for k in a.key_entries()]),
            ("public_key_file", lambda a: [k.public_key_file for k in a.key_entries()]),
        ):
            seen: dict[str, str] = {}
            for approver_id, spec in self.approvers.items():
                for key in set(values(spec)) - {None}:
                    if key in seen:
                        raise ValueError(
                            f"approvers {seen[key]!r} and {approver_id!r} share one {field}; one person "
                            "(and one key) may appear under one approver id only"
                        )
                    seen[key] = approver_id
        return self

    def get(self, approver_id: str) -> ApproverSpec:
        try:
            return self.approvers[approver_id]
        except KeyError:
            raise ConfigError(
                f"approver {approver_id!r} is unknown; known approvers: {sorted(self.approvers)}"
            ) from None

    def key_files(self) -> dict[str, str]:
        """Approver id → the first public key file listed, for those configured by file."""
        found = {}
        for approver_id, spec in self.approvers.items():
            files = [k.public_key_file for k in spec.key_entries() if k.public_key_file]
            if files:
                found[approver_id] = files[0]
        return found


def load_approvers(path: Path) -> Approvers:
    return parse_model(Approvers, load_yaml(path, "approvers"), path, "approvers")


def _key_lines(key: ApproverKey) -> list[str]:
    if key.public_key_file is not None:
        lines = [f"      - public_key_file: {json.dumps(key.public_key_file)}"]
    else:
        pem = (key.public_key or "").strip().splitlines()
        lines = ["      - public_key: |", *(f"          {line}" for line in pem)]
    return lines + [f'        {n}: "{getattr(key, n).isoformat()}"' for n in DATES if getattr(key, n)]


def dump_approver_keys(text: str, approver_id: str, keys: list[ApproverKey]) -> str:
    """``text`` (an approvers.yaml) with the key lines of ``approver_id`` replaced by a ``keys`` list:
    every other line, comments included, is kept as it is. ConfigError when the approver's block is
    not where a rotation can rewrite it (``approvers:`` then two-space ids, four-space fields)."""
    lines = text.splitlines()
    try:
        start = lines.index(f"  {approver_id}:")
    except ValueError:
        raise ConfigError(
            f"approvers.yaml has no line '  {approver_id}:' under approvers: (ids indented by two "
            "spaces, fields by four); rotate this approver's key by hand"
        ) from None
    end = start + 1
    while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    kept, skipping = [], False
    for line in lines[start + 1 : end]:
        field = line.strip().split(":", 1)[0]
        if line.startswith("    ") and not line.startswith("     "):
            skipping = field in ("public_key", "public_key_file", "keys")
        if not skipping:
            kept.append(line)
    block = [lines[start], *kept, "    keys:", *(part for key in keys for part in _key_lines(key))]
    return "\n".join([*lines[:start], *block, *lines[end:]]) + "\n"
