"""Request ids that say whom they were issued to.

The gateway mints every request id with ``RequestIds``; once the caller's API key authenticated,
the id is bound to that principal. Ground truth for a prediction is then accepted only from the
principal it answered (the feedback route), and the drift window keeps only such labels: any
gateway replica and the drift flow, holding the same master key, check an id without shared state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

REQUEST_ID_CONTEXT = b"govdeploy request-id v1"
NONCE_HEX = 16
MAC_HEX = 16
REQUEST_ID = re.compile(f"[0-9a-f]{{{NONCE_HEX + MAC_HEX}}}")  # the form of every request id


class RequestIds:
    """Request ids bound to the principal they answer: 16 random hex characters, then 16 of MAC.

    MAC = the first 64 bits of HMAC-SHA256(key, "<principal>\\n<random part>") with key =
    HMAC-SHA256(master key, "govdeploy request-id v1"): every gateway replica and the drift flow,
    holding the same master key, check an id without shared memory; nobody else can mint one. The
    id of a request without a valid API key is bound to the empty principal, which no caller is.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError(f"a request id key needs at least 32 bytes, got {len(key)}")
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied per MAC: the key is set up once

    @classmethod
    def from_master(cls, master_key: bytes) -> RequestIds:
        """The request ids of a deployment, keyed by a purpose-specific key derived from its master key."""
        return cls(hmac.new(master_key, REQUEST_ID_CONTEXT, hashlib.sha256).digest())

    def _mac(self, principal: str, nonce: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"{principal}\n{nonce}".encode("utf-8", errors="surrogatepass"))
        return mac.hexdigest()[:MAC_HEX]

    def mint(self, principal: str | None) -> str:
        """A fresh request id issued to ``principal`` (None: a caller not authenticated yet)."""
        nonce = secrets.token_hex(NONCE_HEX // 2)
        return nonce + self._mac(principal or "", nonce)

    def rebind(self, request_id: str, principal: str) -> str:
        """``request_id`` with its random part kept, issued to ``principal`` once it authenticated."""
        nonce = request_id[:NONCE_HEX]
        return nonce + self._mac(principal, nonce)

    def issued_to(self, request_id: object, principal: str | None) -> bool:
        """Whether ``request_id`` was minted for ``principal`` (False for anything malformed)."""
        if not principal or not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
            return False
        nonce, mac = request_id[:NONCE_HEX], request_id[NONCE_HEX:]
        return hmac.compare_digest(mac, self._mac(principal, nonce))
