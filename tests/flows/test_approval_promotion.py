"""Signed approvals and signed promotion end to end on the real stack, and what they refuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import mlflow
import pytest

from flows.release import release
from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import ApprovalError
from govdeploy.release.approver import approval_token, submit
from govdeploy.trust.audit_trail import records, unseal, verify_trail
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import verify_version
from tests.flows.conftest import MODEL, approve, start_release, train_as, version_tags, wait_for_state

pytestmark = pytest.mark.e2e


def cli(stack: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govdeploy", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=180,
    )


@pytest.fixture(scope="module")
def promoted(stack: Settings) -> dict[str, Any]:
    """A candidate trained by dana, released with refused attempts first, then alice and bob."""
    candidate = train_as("dana", model=MODEL, rows=3000, seed=21)
    run_id = start_release(candidate["version"])
    wait_for_state(run_id, "Paused")
    keys = stack.keys_dir / "approvers"
    attempts: dict[str, Any] = {
        # the submitter, from another process through the Prefect API
        "dana": cli(stack, "approve", run_id, "--approver", "dana", "--key", str(keys / "dana.key")),
        "garbage": submit(stack, run_id, "not-a-token"),
        "erin": approve(stack, run_id, "erin"),
        "alice": approve(stack, run_id, "alice"),
        "alice again": approve(stack, run_id, "alice"),
    }
    # bob pastes a token, as into the UI form
    token = cli(stack, "approval-token", run_id, "--approver", "bob", "--key", str(keys / "bob.key"))
    assert token.returncode == 0, token.stderr
    attempts["bob"] = submit(stack, run_id, token.stdout.strip())
    final = wait_for_state(run_id, "Completed")
    return {**candidate, "run_id": run_id, "attempts": attempts, "state": final}


def test_refused_attempts_keep_the_run_waiting(stack: Settings, promoted: dict[str, Any]) -> None:
    attempts = promoted["attempts"]
    dana = attempts["dana"]
    assert dana.returncode == 1
    assert (
        f"approve failed: refused: dana submitted credit-risk v{promoted['version']} and cannot approve it"
        in dana.stderr
    )
    assert attempts["erin"].action == "approval.refused"
    assert "none of the required ['risk-officer']" in attempts["erin"].payload["reason"]
    assert attempts["alice"].action == "approval.accepted"
    assert attempts["alice again"].action == "approval.refused"
    assert "alice has already approved" in attempts["alice again"].payload["reason"]
    assert attempts["bob"].action == "approval.accepted"
    assert attempts["bob"].payload["reason"] == "approval 2 of 2 by bob"


def test_quorum_signs_and_promotes_the_approved_bytes(stack: Settings, promoted: dict[str, Any]) -> None:
    version = promoted["version"]
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(MODEL, "champion").version == version
    release_tag = json.loads(version_tags(version)["govdeploy.release"])
    assert release_tag["approvers"] == ["alice", "bob"]
    assert release_tag["artifact_digest"] == promoted["artifact_digest"]
    assert release_tag["flow_run_id"] == promoted["run_id"]
    check = verify_version(
        MODEL,
        version,
        roots=load_roots(stack),
        level="release",
        tracking_uri=stack.mlflow_url,
    )
    assert check.signature_sha256 == release_tag["signature_sha256"]
    approvals = mlflow.artifacts.load_dict(
        f"{client.get_logged_model(client.get_model_version(MODEL, version).source.split('/')[-1]).artifact_location}/approvals.json"
    )
    assert [a["statement"]["approver"] for a in approvals["approvals"]] == ["alice", "bob"]


def test_every_attempt_is_in_the_verified_audit_trail(stack: Settings, promoted: dict[str, Any]) -> None:
    mine = [r for r in records(stack, MODEL) if r.version == promoted["version"]]
    actions = [r.action for r in mine]
    assert actions[:3] == ["candidate.registered", "gate.decided", "approval.refused"]
    assert actions.count("approval.refused") == 4
    assert actions.count("approval.accepted") == 2
    assert actions[-1] == "model.promoted"
    assert mine[-1].payload["approvers"] == ["alice", "bob"]
    accepted = [r for r in mine if r.action == "approval.accepted"]
    assert unseal(stack, accepted[0]) == {"name": "Alice Moreau", "email": "alice@example.com"}
    assert b"alice@example.com" not in stack.audit_log_path.read_bytes()
    report = verify_trail(stack)
    assert report.ok, report.problems
    result = cli(stack, "audit", "verify")
    assert result.returncode == 0 and "audit trail intact" in result.stdout


def test_a_statement_for_another_run_is_refused(stack: Settings, promoted: dict[str, Any]) -> None:
    candidate = train_as("dana", model=MODEL, rows=3000, seed=22)
    run_id = start_release(candidate["version"])
    wait_for_state(run_id, "Paused")
    # a token alice signed for the promoted release's run, replayed against this one
    statement_for_other_run = approval_token(
        stack, run_id, "alice", stack.keys_dir / "approvers" / "alice.key", "approve", "ok"
    )
    import base64

    signed = json.loads(base64.urlsafe_b64decode(statement_for_other_run))
    signed["statement"]["flow_run_id"] = promoted["run_id"]
    tampered = base64.urlsafe_b64encode(json.dumps(signed).encode()).decode()
    outcome = submit(stack, run_id, tampered)
    assert outcome is not None and outcome.action == "approval.refused"
    assert "does not verify" in outcome.payload["reason"]
    rejected = cli(
        stack,
        "approve",
        run_id,
        "--approver",
        "bob",
        "--key",
        str(stack.keys_dir / "approvers" / "bob.key"),
        "--reject",
        "--reason",
        "fairness evidence incomplete",
    )
    assert rejected.returncode == 0, rejected.stderr
    final = wait_for_state(run_id, "Failed")
    assert "rejected by bob: fairness evidence incomplete" in (final.message or "")
    assert "govdeploy.release" not in version_tags(candidate["version"])


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.received = []
    monkeypatch.setenv("GOVDEPLOY_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/alerts")
    get_settings.cache_clear()
    yield _Receiver.received
    server.shutdown()
    monkeypatch.delenv("GOVDEPLOY_ALERT_WEBHOOK")
    get_settings.cache_clear()


def test_no_quorum_in_time_fails_the_run_and_alerts(stack: Settings, webhook: list[dict[str, Any]]) -> None:
    candidate = train_as("dana", model=MODEL, rows=3000, seed=23)
    with pytest.raises(
        ApprovalError, match=r"got 0 of 2 approvals \(none\) within 3 s; nothing was promoted"
    ):
        release(model=MODEL, version=candidate["version"], approval_timeout_seconds=3)
    assert "govdeploy.release" not in version_tags(candidate["version"])
    assert [a["event"] for a in webhook] == ["govdeploy.approval.timed_out"]
    assert webhook[0]["version"] == candidate["version"]
    timed_out = [r for r in records(stack, MODEL) if r.version == candidate["version"]][-1]
    assert timed_out.action == "approval.timed_out"
