from __future__ import annotations

import json
from pathlib import Path

import pytest

from govdeploy.errors import SignatureError
from govdeploy.trust.keys import init_keys
from govdeploy.trust.serving_records import ServingRecord, sign_record, verify_record

RECORD = ServingRecord(
    model="m",
    champion="3",
    challenger="4",
    challenger_weight=25,
    issued_at="2026-11-22T00:00:00+00:00",
    issuer="canary",
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    trusted, other = tmp_path_factory.mktemp("trusted"), tmp_path_factory.mktemp("other")
    init_keys(trusted, [])
    init_keys(other, [])
    return trusted, other


def test_a_signed_record_verifies(keys: tuple[Path, Path]) -> None:
    trusted, _ = keys
    assert verify_record(sign_record(RECORD, trusted / "signing.key"), [trusted / "signing.pub"]) == RECORD


def test_an_edited_or_foreign_record_is_refused(keys: tuple[Path, Path]) -> None:
    trusted, other = keys
    document = json.loads(sign_record(RECORD, trusted / "signing.key"))
    document["record"]["challenger_weight"] = 100
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        verify_record(json.dumps(document).encode(), [trusted / "signing.pub"])
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        verify_record(sign_record(RECORD, other / "signing.key"), [trusted / "signing.pub"])
    with pytest.raises(SignatureError, match="not a signed record"):
        verify_record(b"{}", [trusted / "signing.pub"])
