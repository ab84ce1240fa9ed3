"""Keep the local S3 endpoint's bucket across restarts.

The local endpoint holds its objects in memory, so ``down`` saves the bucket (the current version of
every key, with its metadata and Object Lock retention) into the state directory and ``up`` puts it
back into a fresh endpoint. A snapshot is written to a temporary directory and renamed into place,
so a crash while saving leaves the previous snapshot intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def save(client: Any, bucket: str, directory: Path) -> int:
    """Save every current object of ``bucket`` under ``directory``; return how many."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "objects").mkdir(parents=True)
    index = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            index.append(_save_object(client, bucket, item["Key"], partial / "objects"))
    (partial / "index.json").write_text(json.dumps(index, indent=1))
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return len(index)


def _save_object(client: Any, bucket: str, key: str, objects: Path) -> dict[str, Any]:
    response = client.get_object(Bucket=bucket, Key=key)
    name = hashlib.sha256(key.encode()).hexdigest()
    (objects / name).write_bytes(response["Body"].read())
    retain = response.get("ObjectLockRetainUntilDate")
    return {
        "key": key,
        "file": name,
        "content_type": response.get("ContentType", "binary/octet-stream"),
        "metadata": response.get("Metadata", {}),
        "lock_mode": response.get("ObjectLockMode"),
        "retain_until": retain.isoformat() if retain else None,
    }


def restore(client: Any, bucket: str, directory: Path) -> int:
    """Put the objects of a snapshot back into ``bucket``; return how many (0 without snapshot)."""
    index_path = directory / "index.json"
    if not index_path.exists():
        return 0
    entries = json.loads(index_path.read_text())
    now = datetime.now(UTC)
    for entry in entries:
        extra: dict[str, Any] = {}
        retain = datetime.fromisoformat(entry["retain_until"]) if entry["retain_until"] else None
        if entry["lock_mode"] and retain and retain > now:
            extra = {"ObjectLockMode": entry["lock_mode"], "ObjectLockRetainUntilDate": retain}
        client.put_object(
            Bucket=bucket,
            Key=entry["key"],
            Body=(directory / "objects" / entry["file"]).read_bytes(),
            ContentType=entry["content_type"],
            Metadata=entry["metadata"],
            **extra,
        )
    return len(entries)
