"""A versioned bucket in memory with the few S3 client calls serving records use (no server)."""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import ClientError


class FakeBucket:
    """``put_object``, ``get_object`` (latest or by ``VersionId``), ``delete_object`` (a delete marker)
    and the ``list_object_versions`` paginator, over one versioned bucket."""

    def __init__(self) -> None:
        self.versions: dict[str, list[bytes | None]] = {}  # oldest first; None is a delete marker

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:
        self.versions.setdefault(Key, []).append(Body)

    def delete_object(self, Bucket: str, Key: str) -> None:
        self.versions.setdefault(Key, []).append(None)

    def get_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        history = self.versions.get(Key, [])
        body = history[int(VersionId)] if VersionId is not None else (history[-1] if history else None)
        if body is None:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(body)}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        history = self.versions.get(Key, [])
        if not history or history[-1] is None:
            raise ClientError({"Error": {"Code": "404"}}, "HeadObject")
        return {"VersionId": str(len(history) - 1)}

    def get_paginator(self, name: str) -> FakeBucket:
        assert name == "list_object_versions"
        return self

    def paginate(self, Bucket: str, Prefix: str = "") -> list[dict[str, Any]]:
        versions = [
            {"Key": key, "VersionId": str(index), "IsLatest": index == len(history) - 1}
            for key, history in sorted(self.versions.items())
            if key.startswith(Prefix)
            for index in reversed(range(len(history)))  # S3 lists a key's versions newest first
            if history[index] is not None
        ]
        return [{"Versions": versions}]

    def latest(self, key: str) -> bytes:
        body = self.versions[key][-1]
        assert body is not None
        return body
