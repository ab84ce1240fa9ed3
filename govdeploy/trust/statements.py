"""The shape approvals and submissions share: a statement signed with a person's Ed25519 key.

A statement carries a fresh nonce and a validity window (``issued_at``, ``expires_at``; checked by
``govdeploy.trust.validity``). Its signature is Ed25519 over the statement's canonical JSON, base64
in the signed document (``statement`` and ``signature``); the token a signer hands over is that
document as base64url JSON. A signature that does not verify is refused with an ``ApprovalError``
naming the signer; reading a token is ``validity.read_token``.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel

from govdeploy.errors import ApprovalError
from govdeploy.trust.audit import canonical
from govdeploy.trust.validity import new_nonce, new_window


class Freshness(TypedDict):
    """The fields that make a statement single-use and short-lived."""

    nonce: str
    issued_at: str
    expires_at: str


def fresh(valid_minutes: int) -> Freshness:
    """A new nonce and the window of a statement made now, valid for ``valid_minutes``."""
    issued_at, expires_at = new_window(valid_minutes)
    return Freshness(nonce=new_nonce(), issued_at=issued_at, expires_at=expires_at)


def sign_token(statement: BaseModel, signed: type[BaseModel], key: ed25519.Ed25519PrivateKey) -> str:
    """The token of ``statement`` signed with ``key``: base64url JSON of the ``signed`` document."""
    signature = base64.b64encode(key.sign(canonical(statement.model_dump()))).decode()
    document = signed(statement=statement, signature=signature)
    return base64.urlsafe_b64encode(document.model_dump_json().encode()).decode()


def verify_signature(
    key: ed25519.Ed25519PublicKey, statement: BaseModel, signature: str, refusal: str
) -> None:
    """ApprovalError(``refusal``) unless ``signature`` (base64) is ``key``'s over the statement."""
    try:
        key.verify(base64.b64decode(signature, validate=True), canonical(statement.model_dump()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise ApprovalError(refusal) from None
