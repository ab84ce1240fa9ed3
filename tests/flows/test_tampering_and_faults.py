"""Verify-before-load against real tampering in the local S3 bucket, and promotion under faults."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from govdeploy.backends import registry
from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import RegistryError, SignatureError, StorageError
from govdeploy.release.promotion import promote
from govdeploy.serving import rollout
from govdeploy.trust.approvals import (
    ApprovalRequest,
    SignedStatement,
    make_statement,
    parse_token,
    sign_statement,
)
from govdeploy.trust.keys import init_keys, load_ed25519_private, signing_key
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import load_verified_model, verify_version
from tests.flows.conftest import MODEL, train_as, version_tags

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pair(stack: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two signed candidates."""
    return (
        train_as("dana", model=MODEL, rows=2000, seed=31),
        train_as("dana", model=MODEL, rows=2000, seed=32),
    )


def prefix(version: str) -> str:
    client = mlflow.MlflowClient()
    model_id = client.get_model_version(MODEL, version).source.removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    return "mlflow/" + location.removeprefix("mlflow-artifacts:/") + "/"


@pytest.fixture
def bucket(stack: Settings, pair: tuple[dict[str, Any], dict[str, Any]]) -> Iterator[tuple[Any, str, str]]:
    """The S3 client and the first candidate's key prefix; every object is put back afterwards."""
    client, version = s3_client(stack), pair[0]["version"]
    key_prefix = prefix(version)
    saved = {
        item["Key"]: client.get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
        for item in client.list_objects_v2(Bucket=stack.bucket, Prefix=key_prefix)["Contents"]
    }
    yield client, key_prefix, version
    for item in client.list_objects_v2(Bucket=stack.bucket, Prefix=key_prefix).get("Contents", []):
        client.delete_object(Bucket=stack.bucket, Key=item["Key"])
    for key, body in saved.items():
        client.put_object(Bucket=stack.bucket, Key=key, Body=body)


def check(stack: Settings, version: str, trusted: list[Path] | None = None) -> None:
    roots = load_roots(stack)
    if trusted is not None:
        roots = dataclasses.replace(roots, keys={**roots.keys, "candidate": trusted})
    verify_version(
        MODEL,
        version,
        roots=roots,
        level="candidate",
        tracking_uri=stack.mlflow_url,
    )


def test_untouched_artifacts_verify_and_load(stack: Settings, bucket: tuple[Any, str, str]) -> None:
    _, _, version = bucket
    loaded = load_verified_model(
        MODEL,
        version,
        roots=load_roots(stack),
        level="candidate",
        tracking_uri=stack.mlflow_url,
    )
    assert loaded.inputs[0] == "income"
    assert loaded.artifact_digest == version_tags(version)["govdeploy.artifact_digest"]


def test_a_flipped_byte_is_refused_before_loading(
    stack: Settings, bucket: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, key_prefix, version = bucket
    body = bytearray(client.get_object(Bucket=stack.bucket, Key=key_prefix + "model.skops")["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=stack.bucket, Key=key_prefix + "model.skops", Body=bytes(body))
    loads: list[str] = []
    monkeypatch.setattr(mlflow.sklearn, "load_model", lambda path: loads.append(path))
    with pytest.raises(SignatureError, match=r"does not verify against its candidate.sig.*model.skops"):
        load_verified_model(
            MODEL,
            version,
            roots=load_roots(stack),
            level="candidate",
            tracking_uri=stack.mlflow_url,
        )
    assert loads == []


def test_added_removed_and_renamed_files_are_refused(stack: Settings, bucket: tuple[Any, str, str]) -> None:
    client, key_prefix, version = bucket
    client.put_object(Bucket=stack.bucket, Key=key_prefix + "helper.py", Body=b"import os")
    with pytest.raises(SignatureError, match=r"helper\.py"):
        check(stack, version)
    cli = subprocess.run(
        [sys.executable, "-m", "govdeploy", "verify", f"models:/{MODEL}/{version}", "--level", "candidate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert cli.returncode == 1
    assert cli.stderr.startswith(
        f"verify failed: {MODEL} v{version} does not verify against its candidate.sig"
    )
    assert "helper.py" in cli.stderr
    client.delete_object(Bucket=stack.bucket, Key=key_prefix + "helper.py")
    requirements = client.get_object(Bucket=stack.bucket, Key=key_prefix + "requirements.txt")["Body"].read()
    client.delete_object(Bucket=stack.bucket, Key=key_prefix + "requirements.txt")
    with pytest.raises(SignatureError, match=r"requirements\.txt"):
        check(stack, version)
    client.put_object(Bucket=stack.bucket, Key=key_prefix + "requirements.in", Body=requirements)
    with pytest.raises(SignatureError, match="requirements"):
        check(stack, version)


def test_another_versions_signed_artifacts_are_refused(
    stack: Settings, bucket: tuple[Any, str, str], pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    client, key_prefix, version = bucket
    other_prefix = prefix(pair[1]["version"])
    for item in client.list_objects_v2(Bucket=stack.bucket, Prefix=other_prefix)["Contents"]:
        body = client.get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
        client.put_object(
            Bucket=stack.bucket, Key=key_prefix + item["Key"].removeprefix(other_prefix), Body=body
        )
    with pytest.raises(
        SignatureError, match=f"valid for credit-risk v{pair[1]['version']}, not for credit-risk v{version}"
    ):
        check(stack, version)


def test_an_unknown_signer_is_refused(stack: Settings, bucket: tuple[Any, str, str], tmp_path: Path) -> None:
    init_keys(tmp_path, [])
    with pytest.raises(SignatureError, match="does not verify"):
        check(stack, bucket[2], trusted=[tmp_path / "candidate.pub"])


def _approvals(stack: Settings, request: ApprovalRequest) -> list[SignedStatement]:
    signed = []
    for approver in ("alice", "bob"):
        token = sign_statement(
            make_statement(request, approver, "approve", "ok", 30),
            load_ed25519_private(stack.keys_dir / "approvers" / f"{approver}.key"),
        )
        parsed = parse_token(token)
        assert parsed is not None
        signed.append(parsed)
    return signed


def test_promotion_faults_change_nothing_served_and_a_retry_completes(
    stack: Settings, pair: tuple[dict[str, Any], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faults at each point of a promotion: before its signed serving record nothing serves the new
    version; after it, the record serves and only the aliases lag until a retry moves them."""
    first, second = pair
    client = mlflow.MlflowClient()
    start = rollout.publish(
        stack, MODEL, champion=first["version"], challenger=None, weight=0, action="test", issuer="test"
    )
    client.set_registered_model_alias(MODEL, "champion", first["version"])
    request = ApprovalRequest(
        flow_run_id="run-x",
        model=MODEL,
        version=second["version"],
        artifact_digest=second["artifact_digest"],
        submitted_by="dana",
        policy_digest="p" * 64,
    )
    approvals = _approvals(stack, request)
    before = version_tags(second["version"])

    def attempt() -> tuple[Any, str | None, str | None]:
        promote(
            request,
            approvals,
            {"passed": True},
            "champion",
            signing_key=signing_key(stack, "release"),
            roots=load_roots(stack),
            tracking_uri=stack.mlflow_url,
        )
        record, previous = rollout.promote(stack, MODEL, second["version"], "champion", "test")
        return record, previous, rollout.sync_registry(stack, record)

    def nothing_served() -> None:
        assert rollout.serving_now(stack, MODEL) == start
        assert client.get_model_version_by_alias(MODEL, "champion").version == first["version"]

    with monkeypatch.context() as patch:  # the S3 upload of the release signature fails
        patch.setattr(registry, "upload_model_files", _raise(RegistryError("S3 endpoint unreachable")))
        with pytest.raises(RegistryError, match="S3 endpoint unreachable"):
            attempt()
    nothing_served()
    assert version_tags(second["version"]) == before
    with monkeypatch.context() as patch:  # MLflow fails on the release tag
        patch.setattr(
            mlflow.MlflowClient,
            "set_model_version_tag",
            _fail_once(mlflow.MlflowClient.set_model_version_tag, MlflowException("registry down")),
        )
        with pytest.raises(RegistryError, match="registry down"):
            attempt()
    nothing_served()
    assert version_tags(second["version"]) == before
    with monkeypatch.context() as patch:  # S3 fails between the release signature and the record
        patch.setattr(rollout.serving_records, "write", _raise(StorageError("S3 endpoint unreachable")))
        with pytest.raises(StorageError, match="S3 endpoint unreachable"):
            attempt()
    nothing_served()
    with monkeypatch.context() as patch:  # MLflow fails while the aliases follow the record
        patch.setattr(
            mlflow.MlflowClient,
            "set_registered_model_alias",
            _raise(MlflowException("registry down")),
        )
        record, previous, problem = attempt()
    assert problem is not None and "do not follow serving record" in problem
    assert (record.champion, record.sequence, previous) == (
        second["version"],
        start.sequence + 1,
        first["version"],
    )
    assert rollout.serving_now(stack, MODEL) == record  # the record serves the new version
    assert client.get_model_version_by_alias(MODEL, "champion").version == first["version"]  # lagging
    with pytest.raises(SignatureError, match="not the approved"):  # the approved bytes changed
        promote(
            request.model_copy(update={"artifact_digest": "0" * 64}),
            approvals,
            {},
            "champion",
            signing_key=signing_key(stack, "release"),
            roots=load_roots(stack),
            tracking_uri=stack.mlflow_url,
        )

    again, previous, problem = attempt()  # the retry writes no second record, and moves the aliases
    assert (again, previous, problem) == (record, first["version"], None)
    assert client.get_model_version_by_alias(MODEL, "champion").version == second["version"]
    assert json.loads(version_tags(second["version"])["govdeploy.release"])["approvers"] == ["alice", "bob"]
    verify_version(
        MODEL,
        second["version"],
        roots=load_roots(stack),
        level="release",
        tracking_uri=stack.mlflow_url,
    )


def _raise(error: Exception) -> Any:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    return fail


def _fail_once(original: Any, error: Exception) -> Any:
    """Fails the first call (the promotion's), then behaves (the restore's calls go through)."""
    calls: list[int] = []

    def flaky(*args: object, **kwargs: object) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return original(*args, **kwargs)

    return flaky


@pytest.mark.parametrize("evidence", ["environment.json", "lineage.json", "sbom.cdx.json", "owners.json"])
def test_governance_evidence_is_inside_the_candidate_signature(
    stack: Settings, bucket: tuple[Any, str, str], evidence: str
) -> None:
    client, key_prefix, version = bucket
    key = key_prefix + "governance/" + evidence
    document = json.loads(client.get_object(Bucket=stack.bucket, Key=key)["Body"].read())
    document["edited_by"] = "an insider with write access to the bucket"
    client.put_object(Bucket=stack.bucket, Key=key, Body=json.dumps(document).encode())
    with pytest.raises(
        SignatureError, match=rf"(?s)does not verify against its candidate\.sig.*governance/{evidence}"
    ):
        check(stack, version)


def test_the_digest_recorded_at_training_is_the_verified_downloads(
    stack: Settings, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    for trained in pair:
        verified = verify_version(
            MODEL,
            trained["version"],
            roots=load_roots(stack),
            level="candidate",
            tracking_uri=stack.mlflow_url,
        )
        assert verified.artifact_digest == trained["artifact_digest"]
        assert version_tags(trained["version"])["govdeploy.artifact_digest"] == trained["artifact_digest"]
        assert version_tags(trained["version"])["govdeploy.stage"] == "candidate"
        assert verified.identity.run_id == trained["run_id"]
        assert trained["model_uri"] == f"models:/{verified.identity.model_id}"
