"""Approver identities, ``config/approvers.yaml``: roles and Ed25519 public keys (loaded by
``govdeploy.trust.keys.approver_public_key``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import EmailStr, Field, model_validator

from govdeploy.config.files import StrictModel, load_yaml, parse_model
from govdeploy.errors import ConfigError


class ApproverSpec(StrictModel):
    name: str = Field(min_length=1)
    email: EmailStr
    roles: list[str] = Field(min_length=1)
    public_key: str | None = None
    public_key_file: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> ApproverSpec:
        if (self.public_key is None) == (self.public_key_file is None):
            raise ValueError("give exactly one of public_key (inline PEM) and public_key_file")
        return self


class Approvers(StrictModel):
    """One id per person and per key: a quorum counts people, so neither may appear twice."""

    approvers: dict[str, ApproverSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_id_per_person(self) -> Approvers:
        for field, value in (
            ("email", lambda a: str(a.email).casefold()),
            ("public_key", lambda a: "".join((a.public_key or "").split()) or None),
            ("public_key_file", lambda a: a.public_key_file),
        ):
            seen: dict[str, str] = {}
            for approver_id, spec in self.approvers.items():
                key = value(spec)
                if key is None:
                    continue
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
        """Approver id → public key file, for those configured by file."""
        return {k: a.public_key_file for k, a in self.approvers.items() if a.public_key_file}


def load_approvers(path: Path) -> Approvers:
    return parse_model(Approvers, load_yaml(path, "approvers"), path, "approvers")
