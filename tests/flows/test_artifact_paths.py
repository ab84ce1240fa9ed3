"""Artifact names are bucket keys anyone with bucket access chooses: a name that climbs out of the
download directory (``..``) is refused before anything is written outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import verify_version
from tests.flows.conftest import MODEL, train_as
from tests.flows.test_tampering_and_faults import prefix

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["../../../../escape-{n}.txt", "model/../../../escape-{n}.txt"])
def test_an_artifact_name_with_dot_dot_never_writes_outside_the_download(stack: Settings, name: str) -> None:
    """The key is either stored normalised (outside the version's files: not part of it, which
    still verifies) or, kept as sent, refused by the verified download; nothing is written outside."""
    candidate = train_as("dana", model=MODEL, rows=2000, seed=81)
    client, key_prefix = s3_client(stack), prefix(candidate["version"])
    escaped = name.format(n=candidate["version"])
    client.put_object(Bucket=stack.bucket, Key=key_prefix + escaped, Body=b"not from training")
    stored = [
        item["Key"]
        for item in client.list_objects_v2(Bucket=stack.bucket, Prefix="mlflow/").get("Contents", [])
        if f"escape-{candidate['version']}" in item["Key"]
    ]
    before = _escaped()
    roots = load_roots(stack)
    try:
        assert len(stored) == 1
        if stored[0].startswith(key_prefix):  # listed with the version's files
            with pytest.raises(GovdeployError):
                verify_version(
                    MODEL, candidate["version"], roots=roots, level="candidate", tracking_uri=stack.mlflow_url
                )
        else:
            verify_version(
                MODEL, candidate["version"], roots=roots, level="candidate", tracking_uri=stack.mlflow_url
            )
    finally:
        client.delete_object(Bucket=stack.bucket, Key=stored[0] if stored else key_prefix + escaped)
    assert _escaped() == before


def _escaped() -> set[Path]:
    """Files named like the escaping artifact anywhere a climb out of the download could land."""
    return {p for root in (Path("/"), Path("/tmp")) for p in root.glob("escape-*.txt")}
