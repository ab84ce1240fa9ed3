"""Evidence packs built in a temp dir from a signed model directory, signed audit records and a
signed serving record: verify passes, then names each altered, removed or added file and a broken
audit chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from typer.testing import CliRunner

from govdeploy.cli import app
from govdeploy.evidence.verify import verify_pack
from govdeploy.trust.keys import pem_public
from tests.govdeploy.evidence.packs import build_pack


@pytest.fixture
def pack(tmp_path: Path) -> tuple[Path, Path]:
    return build_pack(tmp_path)


def test_an_intact_pack_verifies(pack: tuple[Path, Path]) -> None:
    out, public = pack
    report = verify_pack(out, public.read_bytes())
    assert report.problems == []
    assert any("candidate.sig verifies" in s for s in report.summary)
    assert any("release.sig verifies" in s for s in report.summary)
    assert any("audit records 1..3" in s for s in report.summary)
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Control matrix" in html
    controls = json.loads((out / "controls.json").read_text())
    assert {c["status"] for c in controls} == {"evidenced", "gap"}


def test_the_cli_names_an_altered_byte(pack: tuple[Path, Path]) -> None:
    out, public = pack
    target = out / "artifacts" / "governance" / "lineage.json"
    data = bytearray(target.read_bytes())
    data[3] ^= 1
    target.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["evidence", "verify", str(out), "--public-key", str(public)])
    assert result.exit_code == 1
    assert "artifacts/governance/lineage.json was altered" in str(result.exception)
    assert "is not the file the candidate signature covers" in str(result.exception)


def test_removed_and_added_files_are_named(pack: tuple[Path, Path]) -> None:
    out, public = pack
    (out / "report.html").unlink()
    (out / "extra.txt").write_text("x")
    problems = verify_pack(out, public.read_bytes()).problems
    assert "report.html is missing (listed in the manifest)" in problems
    assert "extra.txt was added (not in the manifest)" in problems


def test_a_tampered_audit_record_breaks_the_chain(pack: tuple[Path, Path]) -> None:
    out, public = pack
    path = out / "audit" / "records.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("gate.passed", "gate.failed")
    path.write_text("\n".join(lines) + "\n")
    problems = verify_pack(out, public.read_bytes()).problems
    assert "audit record 2 (gate.failed) was edited: its hash does not match" in problems
    assert any(p.startswith("audit/records.jsonl was altered") for p in problems)


def test_a_different_pinned_key_is_refused(pack: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = pack
    other = tmp_path / "other.pub"
    other.write_bytes(pem_public(ed25519.Ed25519PrivateKey.generate()))
    problems = verify_pack(out, other.read_bytes()).problems
    assert any("not the pinned key" in p for p in problems)
    assert any("manifest.sig is not a valid signature" in p for p in problems)


def test_a_forged_serving_record_is_named(pack: tuple[Path, Path]) -> None:
    out, public = pack
    document = next((out / "serving" / "records").iterdir())
    parsed = json.loads(document.read_text())
    parsed["record"]["challenger_weight"] = 50
    document.write_text(json.dumps(parsed))
    problems = verify_pack(out, public.read_bytes()).problems
    assert any("not signed by a trusted key" in p for p in problems)
