"""Request ids bound to the principal they were issued to."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from govdeploy.trust.request_ids import RequestIds

PRINCIPALS = ["demo-client", "deployer", "auditor", "bench"]

MASTER = bytes(range(32))


def test_a_request_id_is_32_hex_random_then_mac_of_its_principal() -> None:
    ids = RequestIds.from_master(MASTER)
    minted = [ids.mint("bench") for _ in range(50)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in minted) and len(set(minted)) == 50
    rid = minted[0]
    key = hmac.new(MASTER, b"govdeploy request-id v1", hashlib.sha256).digest()
    mac = hmac.new(key, f"bench\n{rid[:16]}".encode(), hashlib.sha256).hexdigest()[:16]
    assert rid[16:] == mac
    assert ids.issued_to(rid, "bench")
    assert not ids.issued_to(rid, "demo-client") and not ids.issued_to(rid, "bench2")


def test_a_request_id_rebound_to_its_caller_keeps_its_random_part() -> None:
    ids = RequestIds.from_master(MASTER)
    anonymous = ids.mint(None)
    bound = ids.rebind(anonymous, "bench")
    assert bound[:16] == anonymous[:16] and ids.issued_to(bound, "bench")
    assert not any(ids.issued_to(anonymous, p) for p in [*PRINCIPALS, "", None])  # nobody's


@pytest.mark.parametrize(
    "forged",
    [
        "flip",  # one MAC character changed
        "swap",  # another principal's MAC on this random part
        "0" * 32,
        "abc",
        "A" * 32,
        "a" * 33,
        None,
        42,
    ],
)
def test_a_forged_or_malformed_request_id_is_issued_to_nobody(forged: object) -> None:
    ids = RequestIds.from_master(MASTER)
    rid = ids.mint("bench")
    if forged == "flip":
        forged = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    elif forged == "swap":
        forged = ids.rebind(rid, "demo-client")
    assert not ids.issued_to(forged, "bench")


def test_every_replica_with_the_master_key_agrees_and_no_other_key_does() -> None:
    rid = RequestIds.from_master(MASTER).mint("bench")
    assert RequestIds.from_master(bytes(MASTER)).issued_to(rid, "bench")
    assert not RequestIds.from_master(bytes(32)).issued_to(rid, "bench")
    assert not RequestIds(MASTER).issued_to(rid, "bench")  # the key is derived, never the master itself
    with pytest.raises(ValueError, match="at least 32 bytes, got 16"):
        RequestIds(bytes(16))
