"""Audit anchors in the real object-locked bucket: the writer cannot remove them."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.trust.audit import ANCHOR_PREFIX, AuditLog, S3Anchors, verify

pytestmark = pytest.mark.integration


def test_anchors_are_compliance_locked_and_catch_a_rewrite(stack: Settings, tmp_path: Path) -> None:
    client = s3_client(stack)
    bucket = "audit-anchor-test"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    key = ed25519.Ed25519PrivateKey.generate()
    anchors = S3Anchors(client, bucket, retention_days=1)
    log = AuditLog(tmp_path / "audit.jsonl", key, anchors)
    for n in range(3):
        log.append("event", "writer", {"n": n})
    assert verify(log.path, key.public_key(), anchors.all()).ok

    head = client.head_object(Bucket=bucket, Key=f"{ANCHOR_PREFIX}000000000003.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(
            Bucket=bucket, Key=f"{ANCHOR_PREFIX}000000000003.json", VersionId=head["VersionId"]
        )

    # the writer starts a fresh log with the same key: the anchors in the bucket still disagree
    log.path.unlink()
    for n in range(3):
        log.append("event", "writer", {"n": n, "rewritten": True})
    problems = verify(log.path, key.public_key(), anchors.all()).problems
    assert "record 1 differs from its anchor: the chain was rewritten" in problems
