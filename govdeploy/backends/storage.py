"""The artifact bucket on S3 (the local endpoint or AWS) through boto3."""

from __future__ import annotations

from typing import Any

from govdeploy.config.settings import Settings
from govdeploy.errors import StackError


def s3_client(settings: Settings) -> Any:
    import boto3

    from govdeploy.stack.components import LOCAL_S3_CREDENTIALS

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_url,
        aws_access_key_id=LOCAL_S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=LOCAL_S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


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
