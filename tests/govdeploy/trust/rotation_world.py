"""The world of the rotation tests: a state directory with development keys, the repository's
config copied, an audit log over anchors in memory; and what the old and new keys sign in it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from govdeploy.config.settings import Settings
from govdeploy.trust.audit import AuditLog
from govdeploy.trust.audit_trail import audit_log
from govdeploy.trust.keys import init_keys, load_ed25519_private, signing_key
from govdeploy.trust.serving_content import ServingRecord
from govdeploy.trust.signatures import (
    Identity,
    ReleaseClaims,
    artifact_digest,
    sign_directory,
    write_identity,
    write_release_claims,
)
from tests.conftest import CONFIG_DIR
from tests.govdeploy.trust.anchor_stores import MemoryAnchors


@dataclass
class World:
    settings: Settings
    audit: AuditLog
    anchors: MemoryAnchors
    root: Path

    def keep(self, role: str) -> Path:
        """A copy of the role's current private key (what a stolen or forgotten copy would be)."""
        kept = self.root / "kept" / f"{role}-{len(list((self.root / 'kept').glob('*')))}.key"
        kept.parent.mkdir(exist_ok=True)
        shutil.copy(self.settings.keys_dir / f"{role}.key", kept)
        return kept

    def writer(self) -> AuditLog:
        """The trail's writer as the commands make it (``audit_trail.audit_log``: the audit role's
        current key, checked, and every trusted audit key with its dates), over the anchors in memory."""
        return audit_log(self.settings, store=self.anchors)


def make_world(tmp_path: Path) -> World:
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    settings = Settings(state_dir=tmp_path / "state", config_dir=tmp_path / "config")
    init_keys(settings.keys_dir, [])
    anchors = MemoryAnchors()
    key = load_ed25519_private(settings.keys_dir / "audit.key")
    return World(settings, AuditLog(tmp_path / "audit.jsonl", key, anchors), anchors, tmp_path)


def model_dir(where: Path, level: str) -> Path:
    where.mkdir(parents=True)
    (where / "MLmodel").write_text("flavors: {}\n")
    (where / "model.skops").write_bytes(where.name.encode() * 100)
    write_identity(
        where,
        Identity(
            model="m", version="1", model_id="m-1", run_id="r", submitted_by="dana", submission_proven=True
        ),
    )
    if level == "release":
        (where / "approvals.json").write_text("{}")
        write_release_claims(
            where, ReleaseClaims(model="m", version="1", artifact_digest=artifact_digest(where))
        )
    return where


def signed(world: World, level: str, name: str) -> Path:
    directory = model_dir(world.root / "models" / name, level)
    sign_directory(directory, signing_key(world.settings, level), level)  # type: ignore[arg-type]
    return directory


def record(issued_at: datetime, sequence: int) -> ServingRecord:
    return ServingRecord(
        model="m",
        champion="1",
        challenger=None,
        challenger_weight=0,
        issued_at=issued_at.isoformat(timespec="seconds"),
        issuer="rollout",
        sequence=sequence,
    )


def pub(world: World, role: str) -> Path:
    return world.settings.keys_dir / f"{role}.pub"
