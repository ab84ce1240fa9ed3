"""The content of a signed serving record: which versions serve a model, with which challenger
weight, and the digest two records of one sequence must share.

Signing, writing and reading the records is ``govdeploy.trust.serving_records``; what a reader
remembers of the newest record it verified is ``govdeploy.trust.seen_records``.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field

from govdeploy.trust.audit import canonical


class ServingRecord(BaseModel):
    model: str
    champion: str | None
    challenger: str | None
    challenger_weight: int
    issued_at: str
    issuer: str
    # 1 for the first record of the model, then one more than the newest before it
    sequence: int = Field(ge=1)
    # the id of the audit record of the decision this record carries out, if the caller has one
    audit_record: str | None = None
    # what changed: promotion, canary-step, canary-abort, canary-complete, rollback (the history of a
    # model's records is its signed changelog: rollback targets are read from it, not from tags)
    action: str = "publish"
    # set by a deployer's kill switch: no version of the model answers while it is set (the reason)
    killed: str | None = None


def record_digest(record: ServingRecord) -> str:
    """SHA-256 of the record's signed content (what two records of one sequence must share)."""
    return hashlib.sha256(canonical(record.model_dump())).hexdigest()
