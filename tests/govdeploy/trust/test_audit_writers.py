"""Several writers, one history: processes with state directories of their own append to one
audit trail through the same bucket (the local stack's S3 server), at the same time."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.config.settings import Settings
from govdeploy.stack import components
from govdeploy.trust.anchors import Anchor, S3Anchors
from govdeploy.trust.audit import AuditLog
from govdeploy.trust.audit_verify import read_records, verify_stored
from tests.govdeploy.trust.test_audit_anchors import POLICY_DAYS, moto, settings  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

WRITES = 25


def _key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _log(config: Settings, path: Path, pem: bytes) -> AuditLog:
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    client = components.local_s3_client(config)
    return AuditLog(path, key, S3Anchors(client, config.bucket, POLICY_DAYS))


def _writer(config: Settings, path: str, pem: bytes, name: str) -> None:
    """One machine's writer: its own state directory and log file, the shared bucket."""
    log = _log(config, Path(path), pem)
    for n in range(WRITES):
        log.append("event", name, {"n": n})


def test_racing_claims_of_one_number_have_one_winner(settings: Settings) -> None:  # noqa: F811
    client = components.local_s3_client(settings)
    client.create_bucket(Bucket=settings.bucket, ObjectLockEnabledForBucket=True)
    anchors = S3Anchors(client, settings.bucket, 1)
    won: list[bool] = []
    start = threading.Barrier(16)

    def claim(n: int) -> None:
        mine = S3Anchors(components.local_s3_client(settings), settings.bucket, 1)
        start.wait()
        won.append(mine.claim(Anchor(seq=1, hash=f"{n:064x}", time="2026-11-30T00:00:00+00:00")))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(won) == [False] * 15 + [True]
    versions = client.list_object_versions(Bucket=settings.bucket, Prefix="audit/anchors/")["Versions"]
    assert len(versions) == 1 and len(anchors.all()) == 1


def test_two_machines_appending_at_once_write_one_chain(settings: Settings, tmp_path: Path) -> None:  # noqa: F811
    client = components.local_s3_client(settings)
    client.create_bucket(Bucket=settings.bucket, ObjectLockEnabledForBucket=True)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = _key_pem(key)
    paths = [tmp_path / name / "audit" / "audit.jsonl" for name in ("host-a", "host-b")]
    spawn = multiprocessing.get_context("spawn")
    writers = [
        spawn.Process(target=_writer, args=(settings, str(path), pem, path.parts[-3])) for path in paths
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(180)
        assert writer.exitcode == 0
    logs = [_log(settings, path, pem) for path in paths]
    for log in logs:
        log.sync()
    first = read_records(paths[0])
    assert [r.seq for r in first] == list(range(1, 2 * WRITES + 1))
    assert paths[0].read_bytes() == paths[1].read_bytes()  # the same chain on both machines
    by_writer = {name: [r.payload["n"] for r in first if r.actor == name] for name in ("host-a", "host-b")}
    assert by_writer == {"host-a": list(range(WRITES)), "host-b": list(range(WRITES))}
    stored = S3Anchors(client, settings.bucket, POLICY_DAYS).stored()
    report = verify_stored(paths[0], key.public_key(), stored, POLICY_DAYS)
    assert report.ok, report.problems
    assert report.records == report.anchors == 2 * WRITES
