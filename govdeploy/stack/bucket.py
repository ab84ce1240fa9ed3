"""The bucket. On the local profile, across restarts: the endpoint keeps objects in memory only, so
``up`` creates the object-locked bucket and restores the last snapshot into it, and ``down`` saves
a snapshot before it stops the endpoint. On the external profile ``up`` only checks that the
bucket exists with Object Lock: creating it (and its lock) is the operator's decision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from govdeploy.backends.storage import LOCAL_CREDENTIALS, ensure_bucket, s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import StackError
from govdeploy.stack import snapshot

Progress = Callable[[str], None]


def local_s3_client(settings: Settings) -> Any:
    return s3_client(settings, LOCAL_CREDENTIALS)


def snapshot_dir(settings: Settings) -> Path:
    return settings.state_dir / "s3-snapshot"


def prepare(settings: Settings, progress: Progress) -> None:
    """Create the locked bucket in a fresh endpoint and put the last snapshot back into it."""
    client = local_s3_client(settings)
    if ensure_bucket(client, settings.bucket):
        progress(f"created object-locked bucket {settings.bucket}")
        restored = snapshot.restore(client, settings.bucket, snapshot_dir(settings))
        if restored:
            progress(f"restored {restored} objects of {settings.bucket} from {snapshot_dir(settings)}")


def save(settings: Settings, progress: Progress, log: Path) -> None:
    """Save the bucket before the in-memory endpoint stops; refuse to stop it if that fails."""
    try:
        saved = snapshot.save(local_s3_client(settings), settings.bucket, snapshot_dir(settings))
    except Exception as exc:
        raise StackError(
            f"s3: saving bucket {settings.bucket} to {snapshot_dir(settings)} failed ({exc}); "
            f"the endpoint keeps running so nothing is lost; see its log {log}"
        ) from exc
    progress(f"saved {saved} objects of {settings.bucket} to {snapshot_dir(settings)}")


def external_problem(settings: Settings) -> str | None:
    """Why the external profile's bucket cannot hold govdeploy's artifacts and audit anchors (None
    when it can): unreachable, unreadable with the credentials boto3 found, or without Object Lock."""
    client = s3_client(settings)
    try:
        lock = client.get_object_lock_configuration(Bucket=settings.bucket)["ObjectLockConfiguration"]
    except Exception as exc:  # botocore's errors: only the backends import botocore
        if "ObjectLockConfigurationNotFound" not in str(exc):
            return (
                f"bucket {settings.bucket} at {settings.s3_url} cannot be read "
                f"({type(exc).__name__}: {exc}); check the bucket name (GOVDEPLOY_BUCKET), the endpoint "
                "and the credentials (boto3's standard chain: AWS_* variables, AWS_PROFILE, web identity, "
                "instance role)"
            )
        lock = {}
    if lock.get("ObjectLockEnabled") != "Enabled":
        return (
            f"bucket {settings.bucket} at {settings.s3_url} has no Object Lock; the audit trail needs it: "
            "create a bucket with Object Lock (and versioning) and set GOVDEPLOY_BUCKET to it"
        )
    return None
