"""The local S3 endpoint's bucket survives a restart through a snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from govdeploy.backends.storage import ensure_bucket
from govdeploy.config.settings import Settings
from govdeploy.stack import components, process, snapshot
from tests.conftest import free_port

pytestmark = pytest.mark.integration


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


def test_restore_without_snapshot_does_nothing(tmp_path: Path) -> None:
    assert snapshot.restore(None, "bucket", tmp_path / "none") == 0
