"""The artifact bucket on S3 (the local endpoint, AWS or another S3-compatible store) through boto3.

On the external profile nothing is handed to boto3 but the endpoint (when
``GOVDEPLOY_S3_ENDPOINT_URL`` names one) and the region (``GOVDEPLOY_S3_REGION``): credentials come
from its standard chain (environment, shared config, web identity with STS short-lived
credentials, container or instance role). Only the local profile hands in the local endpoint's
fixed development credentials, which that endpoint does not check. Reads that fail raise
``StorageError`` naming the object, so no caller needs botocore's exceptions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from govdeploy.config.settings import Settings
from govdeploy.errors import StackError, StorageError

MISSING_CODES = ("NoSuchKey", "404", "NotFound")

# The local endpoint accepts any credentials; these name the account in its logs only.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "govdeploy-local",
    "AWS_SECRET_ACCESS_KEY": "govdeploy-local-only",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_client(settings: Settings, credentials: Mapping[str, str] | None = None) -> Any:
    """A client of the bucket's endpoint; ``credentials`` (AWS_* names) override the standard chain,
    which the external profile uses (the local profile: the local endpoint's credentials).

    Requests time out after ``dependency_timeout_seconds`` and are retried ``dependency_retries``
    times (botocore's standard mode), so an endpoint that is down fails a call within seconds;
    ``AWS_MAX_ATTEMPTS`` or ``AWS_RETRY_MODE`` set by an operator take precedence over the retries.
    """
    import boto3
    from botocore.config import Config

    given = dict(credentials or (LOCAL_CREDENTIALS if settings.local else {}))
    limits: dict[str, Any] = {
        "connect_timeout": settings.dependency_timeout_seconds,
        "read_timeout": settings.dependency_timeout_seconds,
    }
    if not {"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"} & os.environ.keys():
        limits["retries"] = {"max_attempts": settings.dependency_retries, "mode": "standard"}
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=given.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=given.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=given.get("AWS_SESSION_TOKEN"),
        region_name=given.get("AWS_DEFAULT_REGION") or settings.s3_region_name,
        config=Config(**limits),
    )


def read_object(client: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when it does not exist; StorageError when it cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in MISSING_CODES:
            return None
        raise StorageError(f"s3://{bucket}/{key} could not be read: {exc}") from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageError(f"s3://{bucket}/{key} could not be read ({type(exc).__name__}: {exc})") from exc
    return body


def current_version(client: Any, bucket: str, key: str) -> str | None:
    """The version id of the key's current object (HEAD), None when there is none (or a delete
    marker is current); StorageError when it cannot be asked."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(client.head_object(Bucket=bucket, Key=key).get("VersionId") or "unversioned")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in MISSING_CODES or code in ("404", "405"):
            return None
        raise StorageError(f"s3://{bucket}/{key} could not be read: {exc}") from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageError(f"s3://{bucket}/{key} could not be read ({type(exc).__name__}: {exc})") from exc


def read_object_version(client: Any, bucket: str, key: str, version_id: str, limit: int = 1 << 20) -> bytes:
    """One version of an object, at most ``limit`` bytes; StorageError when it cannot be read or is
    larger."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"]
        data: bytes = body.read(limit + 1)
    except (ClientError, BotoCoreError, OSError) as exc:
        raise StorageError(f"s3://{bucket}/{key} version {version_id} could not be read: {exc}") from exc
    if len(data) > limit:
        raise StorageError(f"s3://{bucket}/{key} version {version_id} is over {limit} bytes")
    return data


def list_versions(client: Any, bucket: str, key: str) -> list[tuple[str, bool]]:
    """(version id, is the current one) of every stored version of ``key``, newest first; delete
    markers left out. StorageError when the listing fails."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
        return [
            (item["VersionId"], bool(item.get("IsLatest")))
            for page in pages
            for item in page.get("Versions", [])
            if item["Key"] == key
        ]
    except (ClientError, BotoCoreError, OSError) as exc:
        raise StorageError(f"the versions of s3://{bucket}/{key} could not be listed: {exc}") from exc


def require_object(client: Any, bucket: str, key: str) -> bytes:
    """The object's bytes; StorageError when it is missing or cannot be read."""
    body = read_object(client, bucket, key)
    if body is None:
        raise StorageError(f"s3://{bucket}/{key} does not exist")
    return body


def ensure_bucket(client: Any, bucket: str) -> bool:
    """Create the versioned, object-locked bucket if missing; True if it was created.

    Object Lock can only be switched on when a bucket is created; a bucket without it cannot
    anchor the audit trail, so an existing one without it is an error.
    """
    from botocore.exceptions import ClientError

    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        return True
    try:
        lock = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except ClientError:
        lock = {}
    if lock.get("ObjectLockEnabled") != "Enabled":
        raise StackError(
            f"bucket {bucket!r} exists without Object Lock; the audit trail needs a locked bucket: "
            "set GOVDEPLOY_BUCKET to a new name"
        )
    return False
