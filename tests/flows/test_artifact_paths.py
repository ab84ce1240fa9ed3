"""Artifact names are bucket keys anyone with bucket access chooses: a name that climbs out of the
download directory (``..``) is refused before anything is written outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import verified_directory
from tests.flows.conftest import MODEL, train_as
from tests.flows.test_tampering_and_faults import prefix

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["../../../../escape-{n}.txt", "model/../../../escape-{n}.txt"])
def test_an_artifact_name_with_dot_dot_never_writes_outside_the_download(stack: Settings, name: str) -> None:
    """Stored under the version's files as sent, the hostile key never reaches a verified download
    (refused, or not listed as one of the version's files) and nothing is written outside it."""
    candidate = train_as("dana", model=MODEL, rows=2000, seed=81)
    client, key_prefix = s3_client(stack), prefix(candidate["version"])
    hostile = key_prefix + name.format(n=candidate["version"])
    client.put_object(Bucket=stack.bucket, Key=hostile, Body=b"not from training")
    before = _escaped()
    try:
        assert client.get_object(Bucket=stack.bucket, Key=hostile)["Body"].read() == b"not from training"
        with verified_directory(
            MODEL,
            candidate["version"],
            roots=load_roots(stack),
            level="candidate",
            tracking_uri=stack.mlflow_url,
        ) as (directory, _):
            assert not [p for p in directory.parent.rglob("escape-*")]
    except GovdeployError:
        pass  # the download refused it: as safe
    finally:
        client.delete_object(Bucket=stack.bucket, Key=hostile)
    assert _escaped() == before


def _escaped() -> set[Path]:
    """Files named like the escaping artifact anywhere a climb out of the download could land."""
    return {p for root in (Path("/"), Path("/tmp")) for p in root.glob("escape-*.txt")}
