"""Client-side envelope encryption at rest (AES-256-GCM).

Each object gets its own random data key; the data key is wrapped by the master key. The object's
id is bound as associated data to both, so a ciphertext moved to another record does not open.
The local S3 endpoint does not encrypt what it stores, so nothing relies on server-side
encryption headers.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

from govdeploy.errors import CryptoError

WRAP_CONTEXT = b"govdeploy-data-key:"


class Envelope(BaseModel):
    alg: str = "AES-256-GCM"
    wrapped_key: str
    key_nonce: str
    nonce: str
    ciphertext: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def seal(plaintext: bytes, master_key: bytes, object_id: str) -> Envelope:
    """Encrypt with a fresh data key, wrapped by the master key; ``object_id`` is bound to both."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce, key_nonce = os.urandom(12), os.urandom(12)
    aad = object_id.encode()
    return Envelope(
        wrapped_key=_b64(AESGCM(master_key).encrypt(key_nonce, data_key, WRAP_CONTEXT + aad)),
        key_nonce=_b64(key_nonce),
        nonce=_b64(nonce),
        ciphertext=_b64(AESGCM(data_key).encrypt(nonce, plaintext, aad)),
    )


def open_envelope(envelope: Envelope, master_key: bytes, object_id: str) -> bytes:
    """Decrypt; raise CryptoError naming the object if the key, the id or the bytes do not match."""
    aad = object_id.encode()
    try:
        data_key = AESGCM(master_key).decrypt(
            base64.b64decode(envelope.key_nonce), base64.b64decode(envelope.wrapped_key), WRAP_CONTEXT + aad
        )
        return AESGCM(data_key).decrypt(
            base64.b64decode(envelope.nonce), base64.b64decode(envelope.ciphertext), aad
        )
    except (InvalidTag, ValueError):
        raise CryptoError(
            f"encrypted data of {object_id} does not open: wrong master key, moved from another "
            "object, or altered"
        ) from None
