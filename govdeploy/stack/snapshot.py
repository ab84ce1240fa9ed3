"""Keep the local S3 endpoint's bucket across restarts.

The local endpoint holds its objects in memory, so ``down`` saves the bucket (every version of every
key, oldest first, with metadata and Object Lock retention, and delete markers) into the state
directory and ``up`` replays it into a fresh endpoint (version ids are new). A snapshot is
written to a temporary directory and renamed into place, so a crash while saving leaves the
previous snapshot intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def save(client: Any, bucket: str, directory: Path) -> int:
    """Save every version (and delete marker) of ``bucket`` under ``directory``; return how many."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "objects").mkdir(parents=True)
    history: dict[str, list[dict[str, Any]]] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        # S3 lists the versions of a key newest first; "age" keeps that order for equal timestamps
        for kind, items in (("version", page.get("Versions", [])), ("delete", page.get("DeleteMarkers", []))):
            for age, item in enumerate(items):
                history.setdefault(item["Key"], []).append({"kind": kind, "age": age, **item})
    index = []
    for key, entries in history.items():
        # oldest first, so that restoring replays the history in order
        for entry in sorted(entries, key=lambda e: (e["LastModified"], e["IsLatest"], -e["age"])):
            if entry["kind"] == "delete":
                index.append({"key": key, "kind": "delete"})
            else:
                index.append(_save_version(client, bucket, key, entry["VersionId"], partial / "objects"))
    (partial / "index.json").write_text(json.dumps(index, indent=1))
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return len(index)


def _save_version(client: Any, bucket: str, key: str, version_id: str, objects: Path) -> dict[str, Any]:
    response = client.get_object(Bucket=bucket, Key=key, VersionId=version_id)
    name = hashlib.sha256(f"{key}\0{version_id}".encode()).hexdigest()
    (objects / name).write_bytes(response["Body"].read())
    retain = response.get("ObjectLockRetainUntilDate")
    return {
        "key": key,
        "kind": "version",
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
        if entry.get("kind") == "delete":
            client.delete_object(Bucket=bucket, Key=entry["key"])
            continue
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
