"""The local S3 endpoint's bucket survives a restart through a snapshot, and the snapshot cannot
replace the audit anchors unnoticed."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.backends.storage import ensure_bucket
from govdeploy.config.settings import Settings
from govdeploy.errors import AuditError
from govdeploy.stack import components, process, snapshot
from govdeploy.trust.anchors import Anchor, S3Anchors, anchor_key
from govdeploy.trust.audit import AuditLog
from govdeploy.trust.audit_verify import verify_stored
from tests.conftest import free_port


def start_s3(settings: Settings, log: Path) -> process.ProcessRecord:
    component = components.s3(settings)
    child = process.spawn("s3", component.command, component.env, log, settings.state_dir)
    process.wait_healthy("s3", child, component.healthy, 30, log)
    return process.ProcessRecord(
        name="s3",
        pid=child.pid,
        start_ticks=process.start_ticks(child.pid) or 0,
        port=component.port,
        url=component.url,
        log=str(log),
        command=component.command,
    )


@pytest.mark.integration
def test_objects_and_locks_survive_a_restart(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, s3_port=free_port(), bucket="snapshot-test")
    client = components.local_s3_client(settings)
    record = start_s3(settings, tmp_path / "s3.log")
    try:
        assert ensure_bucket(client, settings.bucket)
        big = bytes(range(256)) * 40_000  # 10 MB: uploaded in parts
        client.put_object(
            Bucket=settings.bucket,
            Key="mlflow/a/model.skops",
            Body=b"model bytes",
            Metadata={"origin": "test"},
        )
        client.put_object(Bucket=settings.bucket, Key="mlflow/a/big.bin", Body=big)
        until = datetime.now(UTC) + timedelta(days=1)
        client.put_object(
            Bucket=settings.bucket,
            Key="audit/head",
            Body=b"head",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
        )
        client.put_object(Bucket=settings.bucket, Key="audit/head", Body=b"overwritten")
        client.put_object(Bucket=settings.bucket, Key="gone", Body=b"x")
        client.delete_object(Bucket=settings.bucket, Key="gone")
        assert snapshot.save(client, settings.bucket, tmp_path / "snap") == 6
    finally:
        process.stop(record)

    record = start_s3(settings, tmp_path / "s3.log")
    try:
        assert ensure_bucket(client, settings.bucket)  # a fresh, empty endpoint
        assert snapshot.restore(client, settings.bucket, tmp_path / "snap") == 6
        model = client.get_object(Bucket=settings.bucket, Key="mlflow/a/model.skops")
        assert model["Body"].read() == b"model bytes"
        assert model["Metadata"] == {"origin": "test"}
        assert client.get_object(Bucket=settings.bucket, Key="mlflow/a/big.bin")["Body"].read() == big
        versions = client.list_object_versions(Bucket=settings.bucket, Prefix="audit/head")["Versions"]
        assert len(versions) == 2
        assert client.get_object(Bucket=settings.bucket, Key="audit/head")["Body"].read() == b"overwritten"
        oldest = next(v for v in versions if not v["IsLatest"])
        head = client.head_object(Bucket=settings.bucket, Key="audit/head", VersionId=oldest["VersionId"])
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert abs((head["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1
        with pytest.raises(ClientError):
            client.head_object(Bucket=settings.bucket, Key="gone")
    finally:
        process.stop(record)


@pytest.mark.integration
def test_anchors_come_back_locked_as_saved_and_an_altered_one_is_refused(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, s3_port=free_port(), bucket="anchors-saved")
    client = components.local_s3_client(settings)
    record = start_s3(settings, tmp_path / "s3.log")
    try:
        assert ensure_bucket(client, settings.bucket)
        key = ed25519.Ed25519PrivateKey.generate()
        log = AuditLog(tmp_path / "audit.jsonl", key, S3Anchors(client, settings.bucket, retention_days=1))
        for n in range(3):
            log.append("event", "writer", {"n": n})
        saved = client.head_object(Bucket=settings.bucket, Key=anchor_key(2))
        assert snapshot.save(client, settings.bucket, tmp_path / "snap") == 3

        # a fresh bucket stands for the fresh endpoint of the next 'up'
        assert ensure_bucket(client, "anchors-restored")
        assert snapshot.restore(client, "anchors-restored", tmp_path / "snap") == 3
        restored = client.head_object(Bucket="anchors-restored", Key=anchor_key(2))
        assert restored["ObjectLockMode"] == "COMPLIANCE"
        assert restored["ObjectLockRetainUntilDate"] == saved["ObjectLockRetainUntilDate"]
        stored = S3Anchors(client, "anchors-restored", retention_days=1).stored()
        report = verify_stored(log.path, key.public_key(), stored, retention_days=1)
        assert report.ok, report.problems

        # the snapshot's copy of anchor 2 is swapped for the anchor of a rewritten record
        altered = tmp_path / "altered"
        shutil.copytree(tmp_path / "snap", altered)
        entry = next(e for e in index(altered) if e["key"] == anchor_key(2))
        forged = Anchor(seq=2, hash="f" * 64, time=datetime.now(UTC).isoformat())
        (altered / "objects" / entry["file"]).write_text(forged.model_dump_json())
        assert ensure_bucket(client, "anchors-refused")
        with pytest.raises(
            AuditError, match=rf"{anchor_key(2)}: its file objects/{entry['file']} was changed"
        ):
            snapshot.restore(client, "anchors-refused", altered)
        assert "Versions" not in client.list_object_versions(Bucket="anchors-refused")  # nothing written
    finally:
        process.stop(record)


class FakeBucket:
    """The listing and reads ``snapshot.save`` makes, over versions given in advance."""

    def __init__(self, objects: list[tuple[str, bytes, str | None]]) -> None:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        until = datetime.now(UTC) + timedelta(days=1)
        self.versions = [
            {"Key": k, "VersionId": f"v{n}", "LastModified": start + timedelta(seconds=n), "IsLatest": True}
            for n, (k, _, _) in enumerate(objects)
        ]
        self.objects = {
            f"v{n}": {
                "Body": body,
                "ObjectLockMode": mode,
                "ObjectLockRetainUntilDate": until if mode else None,
            }
            for n, (_, body, mode) in enumerate(objects)
        }

    def get_paginator(self, _: str) -> FakeBucket:
        return self

    def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
        yield {"Versions": self.versions, "DeleteMarkers": []}

    def get_object(self, *, Bucket: str, Key: str, VersionId: str) -> dict[str, Any]:
        found = self.objects[VersionId]
        return {**found, "Body": io.BytesIO(found["Body"]), "Metadata": {}}


def index(directory: Path) -> list[dict[str, Any]]:
    return list(json.loads((directory / "index.json").read_text()))


def write_index(directory: Path, entries: list[dict[str, Any]]) -> None:
    (directory / "index.json").write_text(json.dumps(entries))


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    anchors = [
        (anchor_key(n), Anchor(seq=n, hash=f"{n:064x}", time="t").model_dump_json().encode()) for n in (1, 2)
    ]
    objects = [("mlflow/model.skops", b"model", None), *((k, b, "COMPLIANCE") for k, b in anchors)]
    assert snapshot.save(FakeBucket(objects), "bucket", tmp_path / "snap") == 3
    return tmp_path / "snap"


def test_an_untouched_snapshot_checks_clean(snap: Path) -> None:
    manifest = json.loads((snap / snapshot.MANIFEST).read_text())
    assert [m["key"] for m in manifest] == [anchor_key(1), anchor_key(2)]
    assert manifest[0]["lock_mode"] == "COMPLIANCE" and manifest[0]["retain_until"]
    body = (snap / "objects" / index(snap)[1]["file"]).read_bytes()
    assert manifest[0]["sha256"] == hashlib.sha256(body).hexdigest()
    assert snapshot.check(snap, index(snap)) == []


def test_lock_metadata_edited_in_the_index_is_refused(snap: Path) -> None:
    entries = index(snap)
    entries[2]["lock_mode"] = "GOVERNANCE"
    write_index(snap, entries)
    assert snapshot.check(snap, entries) == [
        f"anchor {anchor_key(2)} (entry 1): lock_mode in the index differ from anchors.json"
    ]
    with pytest.raises(AuditError, match=r"was not restored, it no longer matches what was saved"):
        snapshot.restore(None, "bucket", snap)  # refused before any call to the endpoint


def test_anchors_added_removed_or_reordered_are_refused(snap: Path) -> None:
    entries = index(snap)
    assert snapshot.check(snap, entries[:2]) == [
        f"anchor {anchor_key(2)} (entry 1) is in anchors.json but not in the index: it was removed"
    ]
    assert snapshot.check(snap, [*entries, entries[2]]) == [
        f"anchor {anchor_key(2)} (entry 2) is in the index but not in anchors.json: it was added"
    ]
    assert snapshot.check(snap, [entries[0], entries[2], entries[1]]) == [
        "its anchor entries are in another order than in anchors.json"
    ]


def test_a_snapshot_without_manifest_or_digests_is_refused_when_it_holds_anchors(snap: Path) -> None:
    (snap / snapshot.MANIFEST).unlink()
    assert snapshot.check(snap, index(snap)) == [
        "it has 2 anchor entries but no anchor manifest anchors.json"
    ]
    stripped = [{k: v for k, v in e.items() if k != "sha256"} for e in index(snap)]
    assert f"anchor {anchor_key(1)} has no recorded digest" in snapshot.check(snap, stripped)
    # an older snapshot without anchors has nothing to prove: it restores unchecked
    assert snapshot.check(snap, stripped[:1]) == []


def test_restore_without_snapshot_does_nothing(tmp_path: Path) -> None:
    assert snapshot.restore(None, "bucket", tmp_path / "none") == 0
