"""The local S3 server's patches of moto: version listings that do not copy object bodies."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from govdeploy.stack.s3_emulator import make_version_listing_cheap

NAME = "emulator-test"
BODY = b"x" * (4 << 20)


@pytest.fixture
def bucket() -> Iterator[Any]:
    make_version_listing_cheap()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=NAME)
        s3.put_bucket_versioning(Bucket=NAME, VersioningConfiguration={"Status": "Enabled"})
        yield s3


def test_a_listing_shows_every_version_and_leaves_the_bodies_readable(bucket: Any) -> None:
    for n in range(3):
        bucket.put_object(Bucket=NAME, Key="io/a", Body=BODY[: n + 1])
    bucket.delete_object(Bucket=NAME, Key="io/a")
    bucket.put_object(Bucket=NAME, Key="other", Body=b"o")

    listing = bucket.list_object_versions(Bucket=NAME, Prefix="io/")
    gc.collect()  # the listing's entries are gone: the stored bodies must stay open

    versions = listing["Versions"]
    assert [v["Size"] for v in versions] == [3, 2, 1]
    assert [v["IsLatest"] for v in versions] == [False, False, False]
    assert listing["DeleteMarkers"][0]["IsLatest"] is True
    for v in versions:
        got = bucket.get_object(Bucket=NAME, Key="io/a", VersionId=v["VersionId"])["Body"].read()
        assert got == BODY[: v["Size"]]


def test_a_listing_does_not_copy_the_bodies(bucket: Any) -> None:
    for _ in range(8):
        bucket.put_object(Bucket=NAME, Key="big", Body=BODY)
    tracemalloc.start()
    try:
        listing = bucket.list_object_versions(Bucket=NAME, Prefix="none/")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert listing.get("Versions", []) == []
    assert peak < len(BODY), f"listing allocated {peak} bytes for 8 bodies of {len(BODY)}"
