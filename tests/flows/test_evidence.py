"""An evidence pack of a promoted version on the real stack: exported, then verified offline under
the pinned audit key; one altered byte is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from govdeploy.config.settings import Settings
from govdeploy.evidence.collect import collect
from govdeploy.evidence.pack import write_pack
from govdeploy.evidence.verify import verify_pack
from govdeploy.trust.keys import load_ed25519_private
from tests.flows.conftest import MODEL, promote_now, train_as

pytestmark = pytest.mark.e2e


def test_a_promoted_version_exports_and_verifies(stack: Settings, tmp_path: Path) -> None:
    candidate = train_as("dana", model=MODEL, rows=2000, seed=71)
    promote_now(stack, candidate)
    version = str(candidate["version"])
    out = tmp_path / "pack"
    write_pack(collect(stack, MODEL, version), out, load_ed25519_private(stack.keys_dir / "audit.key"))
    public = (stack.keys_dir / "audit.pub").read_bytes()
    report = verify_pack(out, public)
    assert report.problems == []
    assert (out / "artifacts" / "release.sig").is_file()
    assert (out / "artifacts" / "governance" / "owners.json").is_file()
    facts = json.loads((out / "report.json").read_text())
    assert facts["serving_periods"][0]["role"] == "champion"
    assert facts["audit"]["version_records"]
    (out / "artifacts" / "approvals.json").write_bytes(b"{}")
    assert any(
        p.startswith("artifacts/approvals.json was altered") for p in verify_pack(out, public).problems
    )
