"""Audit anchors in a real object-locked bucket (a moto server), and the attacks it does not stop.

moto enforces COMPLIANCE deletes but not: downgrading COMPLIANCE to GOVERNANCE (after which a
versioned delete succeeds), shortening retention, suspending versioning. Each attack below is
carried out against the server and shown refused by the verifier, which checks the anchors as
the bucket keeps them and the records under the pinned key.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.config.settings import Settings
from govdeploy.stack import components, process
from govdeploy.trust.anchors import anchor_key
from govdeploy.trust.audit import ANCHOR_PREFIX, GENESIS, AuditLog, S3Anchors, record_hash
from govdeploy.trust.audit_trail import verify_trail
from govdeploy.trust.audit_verify import read_records, verify
from tests.conftest import CONFIG_DIR, free_port

pytestmark = pytest.mark.integration

POLICY_DAYS = 2555  # config/policy.yaml retention.audit_days
EMULATOR = "is moto, an S3 emulator that does not enforce Object Lock"
UNPINNED = "the audit public key is not pinned"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """One moto server for the module; each test uses its own bucket."""
    state = tmp_path_factory.mktemp("moto")
    settings = Settings(state_dir=state, config_dir=CONFIG_DIR, s3_port=free_port())
    component = components.s3(settings)
    log = state / "s3.log"
    child = process.spawn("s3", component.command, component.env, log, state)
    process.wait_healthy("s3", child, component.healthy, 30, log)
    record = process.ProcessRecord(
        name="s3",
        pid=child.pid,
        start_ticks=process.start_ticks(child.pid) or 0,
        port=component.port,
        url=component.url,
        log=str(log),
        command=component.command,
    )
    yield settings
    process.stop(record)


@pytest.fixture
def settings(
    moto: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Settings:
    """This test's state directory and bucket; the local credentials for the standard chain."""
    for name, value in components.LOCAL_S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = request.node.name.replace("_", "-")[5:50].strip("-")
    return moto.model_copy(update={"state_dir": tmp_path / "state", "bucket": bucket})


def write_public(key: ed25519.Ed25519PrivateKey, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def start_trail(settings: Settings, records: int = 3) -> tuple[Any, ed25519.Ed25519PrivateKey]:
    """A locked bucket and a trail of ``records`` records as the deployment writes it."""
    client = components.local_s3_client(settings)
    client.create_bucket(Bucket=settings.bucket, ObjectLockEnabledForBucket=True)
    key = ed25519.Ed25519PrivateKey.generate()
    write_public(key, settings.keys_dir / "audit.pub")
    log = AuditLog(settings.audit_log_path, key, S3Anchors(client, settings.bucket, POLICY_DAYS))
    for n in range(records):
        log.append("event", "writer", {"n": n})
    return client, key


def pinned(settings: Settings, key: ed25519.Ed25519PrivateKey, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"audit_public_key": write_public(key, tmp_path / "pinned" / "audit.pub")}
    )


def version_of(client: Any, bucket: str, seq: int) -> str:
    return str(client.head_object(Bucket=bucket, Key=anchor_key(seq))["VersionId"])


def downgrade(client: Any, bucket: str, seq: int) -> str:
    """The emulator's gap: COMPLIANCE becomes GOVERNANCE, which the writer may bypass."""
    version = version_of(client, bucket, seq)
    until = client.head_object(Bucket=bucket, Key=anchor_key(seq), VersionId=version)[
        "ObjectLockRetainUntilDate"
    ]
    client.put_object_retention(
        Bucket=bucket,
        Key=anchor_key(seq),
        VersionId=version,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
        BypassGovernanceRetention=True,
    )
    return version


def test_anchors_are_compliance_locked_and_catch_a_rewrite(settings: Settings, tmp_path: Path) -> None:
    client = components.local_s3_client(settings)
    bucket = settings.bucket
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

    # a number is claimed once: a second claim of it loses, whoever makes it
    (third,) = [a for a in anchors.all() if a.seq == 3]
    assert anchors.claim(third.model_copy(update={"hash": "0" * 64})) is False
    # a fresh log with the same key continues the chain kept in the bucket
    log.path.unlink()
    assert log.append("event", "writer", {"n": 3}).seq == 4
    assert [r.seq for r in read_records(log.path)] == [1, 2, 3, 4]
    # a log rewritten by the key's holder no longer matches the anchors
    records = read_records(log.path)
    records[0].payload = {"n": 0, "rewritten": True}
    prev = GENESIS
    for record in records:
        record.prev = prev
        record.hash = record_hash(record)
        record.signature = base64.b64encode(key.sign(bytes.fromhex(record.hash))).decode()
        prev = record.hash
    log.path.write_text("".join(r.model_dump_json() + "\n" for r in records))
    problems = verify(log.path, key.public_key(), anchors.all()).problems
    assert "record 1 differs from its anchor: the chain was rewritten" in problems


def test_a_faithful_trail_verifies_and_the_report_says_what_it_does_not_prove(
    settings: Settings, tmp_path: Path
) -> None:
    _, key = start_trail(settings)
    report = verify_trail(settings)
    assert report.ok, report.problems
    assert report.records == 3 and report.anchors == 3
    assert len(report.warnings) == 2
    assert EMULATOR in report.warnings[0] and settings.s3_url in report.warnings[0]
    assert UNPINNED in report.warnings[1] and str(settings.keys_dir / "audit.pub") in report.warnings[1]

    report = verify_trail(pinned(settings, key, tmp_path))
    assert report.ok and len(report.warnings) == 1 and EMULATOR in report.warnings[0]


def test_an_anchor_downgraded_to_governance_then_deleted_and_replaced_is_refused(settings: Settings) -> None:
    client, _ = start_trail(settings)
    original = downgrade(client, settings.bucket, 2)
    (problem,) = verify_trail(settings).problems
    assert problem == (
        f"anchor {anchor_key(2)} (version {original}) is locked in GOVERNANCE mode, not COMPLIANCE: its lock "
        "was downgraded or removed, so it can be deleted or replaced (or this identity lacks s3:GetObjectRetention)"
    )

    # the emulator lets the writer delete it now, and put a fresh, COMPLIANCE-locked copy in its place
    body = client.get_object(Bucket=settings.bucket, Key=anchor_key(2), VersionId=original)["Body"].read()
    client.delete_object(
        Bucket=settings.bucket, Key=anchor_key(2), VersionId=original, BypassGovernanceRetention=True
    )
    time.sleep(1.1)  # the bucket's LastModified counts seconds
    client.put_object(
        Bucket=settings.bucket,
        Key=anchor_key(2),
        Body=body,
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=POLICY_DAYS),
    )
    (problem,) = verify_trail(settings).problems
    assert problem.startswith("anchor 2 was stored at ")
    assert problem.endswith("anchors are written in sequence, so anchor 2 was written again later")


def test_an_anchor_deleted_after_a_downgrade_is_reported(settings: Settings) -> None:
    client, _ = start_trail(settings)
    for seq in (2, 3):
        version = downgrade(client, settings.bucket, seq)
        client.delete_object(
            Bucket=settings.bucket, Key=anchor_key(seq), VersionId=version, BypassGovernanceRetention=True
        )
    report = verify_trail(settings)
    assert report.problems == ["records 2..3 are not anchored in the bucket"]


def test_an_anchor_with_shortened_retention_is_refused(settings: Settings) -> None:
    client, _ = start_trail(settings)
    version = version_of(client, settings.bucket, 1)
    client.put_object_retention(  # moto accepts a shorter COMPLIANCE retention; S3 refuses it
        Bucket=settings.bucket,
        Key=anchor_key(1),
        VersionId=version,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(days=1)},
    )
    (problem,) = verify_trail(settings).problems
    assert problem.startswith(f"anchor {anchor_key(1)} (version {version}) is locked until ")
    assert f"short of the {POLICY_DAYS} days the policy retains audit evidence" in problem
    assert problem.endswith("its retention was shortened")


def test_a_second_version_and_a_delete_marker_under_anchor_keys_are_refused(settings: Settings) -> None:
    client, _ = start_trail(settings)
    body = client.get_object(Bucket=settings.bucket, Key=anchor_key(2))["Body"].read()
    client.put_object(  # the same content, locked as well: still a rewrite
        Bucket=settings.bucket,
        Key=anchor_key(2),
        Body=body,
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=POLICY_DAYS),
    )
    client.delete_object(Bucket=settings.bucket, Key=anchor_key(3))  # a delete marker hides it
    problems = verify_trail(settings).problems
    assert (
        f"anchor {anchor_key(2)} has 2 versions: it was rewritten (the oldest version is the original)"
        in problems
    )
    assert any(p.startswith(f"anchor {anchor_key(3)} has a delete marker") for p in problems)
    assert len(problems) == 2


def test_suspended_versioning_is_refused(settings: Settings) -> None:
    client, _ = start_trail(settings)
    client.put_bucket_versioning(Bucket=settings.bucket, VersioningConfiguration={"Status": "Suspended"})
    assert verify_trail(settings).problems == [
        f"bucket {settings.bucket} has versioning Suspended: overwrites replace anchors; a bucket with "
        "Object Lock must keep versioning Enabled"
    ]


def test_a_chain_rewritten_and_resigned_with_another_key_fails_under_the_pinned_key(
    settings: Settings, tmp_path: Path
) -> None:
    client, key = start_trail(settings)
    guarded = pinned(settings, key, tmp_path)
    # the attacker clears the anchors through the emulator's gap, replaces the key beside the log,
    # and writes a new history, anchored and locked as faithfully as the original
    for seq in (1, 2, 3):
        version = downgrade(client, settings.bucket, seq)
        client.delete_object(
            Bucket=settings.bucket, Key=anchor_key(seq), VersionId=version, BypassGovernanceRetention=True
        )
    forger = ed25519.Ed25519PrivateKey.generate()
    write_public(forger, settings.keys_dir / "audit.pub")
    settings.audit_log_path.unlink()
    log = AuditLog(settings.audit_log_path, forger, S3Anchors(client, settings.bucket, POLICY_DAYS))
    for n in range(3):
        log.append("event", "forger", {"n": n})

    assert verify_trail(guarded).problems == [
        f"record {n} has no valid signature of the audit key" for n in (1, 2, 3)
    ]
    # unpinned, only the report's warnings stand between the reader and the forgery
    unpinned = verify_trail(settings)
    assert unpinned.ok
    assert EMULATOR in unpinned.warnings[0] and UNPINNED in unpinned.warnings[1]


def govdeploy(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVDEPLOY_")}
    env.update(
        GOVDEPLOY_STATE_DIR=str(settings.state_dir),
        GOVDEPLOY_CONFIG_DIR=str(settings.config_dir),
        GOVDEPLOY_S3_PORT=str(settings.s3_port),
        GOVDEPLOY_BUCKET=settings.bucket,
        COLUMNS="200",
        **components.LOCAL_S3_CREDENTIALS,
    )
    return subprocess.run(
        [sys.executable, "-m", "govdeploy", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_cli_prints_warnings_and_fails_on_problems(settings: Settings) -> None:
    client, _ = start_trail(settings)
    result = govdeploy(settings, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert f"warning: the bucket's endpoint {settings.s3_url} {EMULATOR}" in result.stdout
    assert (
        f"warning: {UNPINNED} (GOVDEPLOY_AUDIT_PUBLIC_KEY is unset and trust.yaml names a key file)"
        in result.stdout
    )
    assert "audit trail intact: 3 records" in result.stdout and "(2 warning(s) above)" in result.stdout

    downgrade(client, settings.bucket, 3)
    result = govdeploy(settings, "audit", "verify")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"audit verify failed: {settings.audit_log_path}: 1 problem(s):\n  - anchor "
    )
    assert "is locked in GOVERNANCE mode, not COMPLIANCE" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_names_a_torn_line_and_the_next_append_repairs_it_against_the_bucket(
    settings: Settings,
) -> None:
    client, key = start_trail(settings)
    offset = settings.audit_log_path.stat().st_size
    with settings.audit_log_path.open("ab") as out:
        out.write(b'{"seq":4,"id":"torn')  # the append crashed mid-line
    result = govdeploy(settings, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert f"warning: line 4 (byte offset {offset}, 19 bytes, sha256 " in result.stdout
    assert "audit trail intact: 3 records" in result.stdout

    log = AuditLog(settings.audit_log_path, key, S3Anchors(client, settings.bucket, POLICY_DAYS))
    assert log.append("event", "writer", {"n": 3}).seq == 5
    result = govdeploy(settings, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert f"warning: record 4 (audit.repaired): a torn line of 19 bytes at byte offset {offset}" in (
        result.stdout
    )
    assert "audit trail intact: 5 records" in result.stdout

    settings.audit_log_path.write_bytes(settings.audit_log_path.read_bytes()[:-30])  # cut record 5
    assert log.append("event", "writer", {"n": 4}).seq == 7  # 5 copied back from the bucket, 6 the repair
    result = govdeploy(settings, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "audit trail intact: 7 records" in result.stdout
