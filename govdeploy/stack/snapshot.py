"""Keep the local S3 endpoint's bucket across restarts.

The local endpoint holds its objects in memory, so ``down`` saves the bucket (every version of every
key, oldest first, with metadata and Object Lock retention, and delete markers) into the state
directory and ``up`` replays it into a fresh endpoint (version ids are new). A snapshot is
written to a temporary directory and renamed into place, so a crash while saving leaves the
previous snapshot intact.

The audit anchors must not be replaceable through the snapshot. ``save`` records the SHA-256 of
every object and writes a manifest of the anchor entries (``anchors.json``: key, content digest,
Object Lock mode and retain-until, original LastModified; delete markers too). ``restore`` checks
the whole snapshot before it writes anything: every object file must match its digest (anchors
must have one), and the anchor entries of the index must be exactly those of the manifest. On any
difference, or anchors without a manifest (an older govdeploy's snapshot, or a stripped one), it
refuses with ``AuditError``: nothing is written and the snapshot is left as it is. Anchors are
replayed as saved, with their original lock mode and retain-until (an expired lock is not
renewed), so ``govdeploy audit verify`` judges them as the bucket kept them.

The snapshot lives in the state directory: an insider who rewrites an object, the index and the
manifest alike is not caught here; ``audit verify`` then still checks the anchors against the log
under the pinned key, and says that the emulator proves nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from govdeploy.errors import AuditError
from govdeploy.trust.anchors import ANCHOR_PREFIX

MANIFEST = "anchors.json"
MANIFEST_FIELDS = ("key", "kind", "sha256", "lock_mode", "retain_until", "last_modified")

Entry = dict[str, Any]


def save(client: Any, bucket: str, directory: Path) -> int:
    """Save every version (and delete marker) of ``bucket`` under ``directory``; return how many."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "objects").mkdir(parents=True)
    history: dict[str, list[Entry]] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        # S3 lists the versions of a key newest first; "age" keeps that order for equal timestamps
        for kind, items in (("version", page.get("Versions", [])), ("delete", page.get("DeleteMarkers", []))):
            for age, item in enumerate(items):
                history.setdefault(item["Key"], []).append({"kind": kind, "age": age, **item})
    index = []
    for key, entries in history.items():
        # oldest first, so that restoring replays the history in order
        for entry in sorted(entries, key=lambda e: (e["LastModified"], e["IsLatest"], -e["age"])):
            stored = entry["LastModified"].isoformat()
            if entry["kind"] == "delete":
                index.append({"key": key, "kind": "delete", "last_modified": stored})
            else:
                saved = _save_version(client, bucket, key, entry["VersionId"], partial / "objects")
                index.append({**saved, "last_modified": stored})
    (partial / "index.json").write_text(json.dumps(index, indent=1))
    (partial / MANIFEST).write_text(json.dumps(anchor_manifest(index), indent=1))
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return len(index)


def _save_version(client: Any, bucket: str, key: str, version_id: str, objects: Path) -> Entry:
    response = client.get_object(Bucket=bucket, Key=key, VersionId=version_id)
    name = hashlib.sha256(f"{key}\0{version_id}".encode()).hexdigest()
    body = response["Body"].read()
    (objects / name).write_bytes(body)
    retain = response.get("ObjectLockRetainUntilDate")
    return {
        "key": key,
        "kind": "version",
        "file": name,
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": response.get("ContentType", "binary/octet-stream"),
        "metadata": response.get("Metadata", {}),
        "lock_mode": response.get("ObjectLockMode"),
        "retain_until": retain.isoformat() if retain else None,
    }


def anchor_manifest(index: list[Entry]) -> list[Entry]:
    """The anchor entries of an index, reduced to what identifies them and their lock."""
    return [
        {field: entry.get(field) for field in MANIFEST_FIELDS}
        for entry in index
        if str(entry.get("key", "")).startswith(ANCHOR_PREFIX)
    ]


def check(directory: Path, index: list[Entry]) -> list[str]:
    """How the snapshot differs from what was saved (empty: it restores as saved)."""
    return _digest_problems(directory, index) + _manifest_problems(directory, index)


def _digest_problems(directory: Path, index: list[Entry]) -> list[str]:
    problems = []
    for entry in index:
        if entry.get("kind") == "delete":
            continue
        key, digest = entry["key"], entry.get("sha256")
        path = directory / "objects" / entry["file"]
        if digest is None:
            if key.startswith(ANCHOR_PREFIX):
                problems.append(f"anchor {key} has no recorded digest")
        elif not path.is_file():
            problems.append(f"{key}: its file objects/{entry['file']} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{key}: its file objects/{entry['file']} was changed after it was saved")
    return problems


def _manifest_problems(directory: Path, index: list[Entry]) -> list[str]:
    saved = anchor_manifest(index)
    path = directory / MANIFEST
    if not path.exists():
        return [f"it has {len(saved)} anchor entries but no anchor manifest {MANIFEST}"] if saved else []
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        return [f"its anchor manifest {MANIFEST} is not JSON"]
    if manifest == saved:
        return []
    return _differences(saved, manifest) or [f"its anchor entries are in another order than in {MANIFEST}"]


def _numbered(entries: list[Entry]) -> dict[tuple[str, int], Entry]:
    """Entries by (key, how many entries of that key came before)."""
    seen: Counter[str] = Counter()
    numbered = {}
    for entry in entries:
        key = str(entry.get("key"))
        numbered[(key, seen[key])] = entry
        seen[key] += 1
    return numbered


def _differences(saved: list[Entry], manifest: list[Entry]) -> list[str]:
    index_side, manifest_side = _numbered(saved), _numbered(manifest)
    problems = []
    for key, position in sorted(index_side.keys() | manifest_side.keys()):
        label = f"anchor {key} (entry {position + 1})"
        if (key, position) not in manifest_side:
            problems.append(f"{label} is in the index but not in {MANIFEST}: it was added")
        elif (key, position) not in index_side:
            problems.append(f"{label} is in {MANIFEST} but not in the index: it was removed")
        else:
            ours, theirs = index_side[(key, position)], manifest_side[(key, position)]
            changed = [f for f in MANIFEST_FIELDS if ours.get(f) != theirs.get(f)]
            if changed:
                problems.append(f"{label}: {', '.join(changed)} in the index differ from {MANIFEST}")
    return problems


def restore(client: Any, bucket: str, directory: Path) -> int:
    """Put the objects of a snapshot back into ``bucket``; return how many (0 without snapshot).

    Raise AuditError, writing nothing, when the snapshot differs from what was saved.
    """
    index_path = directory / "index.json"
    if not index_path.exists():
        return 0
    entries = json.loads(index_path.read_text())
    problems = check(directory, entries)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if problems[10:] else "")
        raise AuditError(
            f"snapshot {directory} was not restored, it no longer matches what was saved: {shown}. "
            "Nothing was written and the snapshot is left as it is. If nobody changed it, an older "
            f"govdeploy saved it without digests: set it aside (mv {directory} {directory}.unverified) "
            "to start with an empty bucket; the audit log then no longer verifies against its anchors"
        )
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
