"""A release whose deployments process died while it waited for approvals, on the real stack.

The deployments process is killed (SIGKILL to its process group, as when a machine or the process
dies) with a release paused after one accepted approval, then started again. The new process ends
the orphaned run as Crashed before it serves, records ``release.abandoned`` naming the accepted
approval and the approval sent while no process ran the release, and alerts; later approvals are
refused with the run's state and what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from govdeploy.backends import flow_runs
from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import ApprovalError, GovdeployError
from govdeploy.polling import poll
from govdeploy.release.approver import approval_token, submit
from govdeploy.stack import components, manager, process
from govdeploy.trust.audit_trail import records, verify_trail
from tests.flows.conftest import MODEL, approve, start_release, train_as, wait_for_state

pytestmark = pytest.mark.e2e


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (flow runs may lead sessions of their own)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat:
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def kill_deployments(stack: Settings) -> None:
    """SIGKILL the deployments process and every flow run it started: nothing gets to clean up."""
    record = process.read_record(stack.state_dir / "run" / "deployments.json")
    assert record is not None and process.is_running(record)
    for pid in [record.pid, *descendants(record.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    manager._stop_component(stack, deployments(stack))  # reaps the group, drops the record
    assert not process.is_running(record)


def deployments(stack: Settings) -> components.Component:
    return components.deployments(stack, components.code_digest(stack.config_dir))


def start_deployments(stack: Settings) -> None:
    """Start the deployments process (it ends orphaned runs before it serves) and wait until ready."""
    component = deployments(stack)
    child, _ = manager._launch(stack, component)
    log = stack.state_dir / "logs" / "deployments.log"
    process.wait_healthy(component.name, child, component.healthy, stack.start_timeout, log)


@pytest.fixture(scope="module")
def orphaned(stack: Settings) -> Iterator[dict[str, Any]]:
    """A release paused after alice's approval; the process dies; bob approves into the void; the
    process restarts (with an alert webhook)."""
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    candidate = train_as("dana", model=MODEL, rows=3000, seed=41)
    run_id = start_release(candidate["version"])
    wait_for_state(run_id, "Paused")
    alice = approve(stack, run_id, "alice")
    wait_for_state(run_id, "Paused")
    key = stack.keys_dir / "approvers"
    bob_token = approval_token(stack, run_id, "bob", key / "bob.key", "approve", "checked the gate")
    erin_token = approval_token(stack, run_id, "erin", key / "erin.key", "approve", "late")
    kill_deployments(stack)
    lost = submit(stack, run_id, bob_token, wait_seconds=2)  # the run resumes with nothing behind it
    patch = pytest.MonkeyPatch()
    patch.setenv("GOVDEPLOY_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/alerts")
    try:
        start_deployments(stack)
        # its deployments may still look ready from before the kill: wait for the run itself
        final = flow_runs.wait_for_final(run_id, timeout=90)
        poll(lambda: _Receiver.received, timeout=10)  # posted right after the run was ended
    finally:
        patch.undo()
        get_settings.cache_clear()
    yield {
        **candidate,
        "run_id": run_id,
        "alice": alice,
        "lost": lost,
        "bob_token": bob_token,
        "erin_token": erin_token,
        "state": final,
        "alerts": list(_Receiver.received),
    }
    server.shutdown()


def test_the_orphaned_run_ends_crashed_saying_what_to_do(stack: Settings, orphaned: dict[str, Any]) -> None:
    assert orphaned["alice"] is not None and orphaned["alice"].action == "approval.accepted"
    assert orphaned["lost"] is None  # no process read bob's approval
    state = orphaned["state"]
    assert state.name == "Crashed"
    again = flow_runs.read_run(orphaned["run_id"]).state
    assert again is not None and (again.name, again.message) == (state.name, state.message)
    message = state.message or ""
    version = orphaned["version"]
    assert message.startswith(
        f"the deployments process restarted while this release of {MODEL} v{version} waited for approvals"
    )
    assert f"Approvals accepted so far: 1 (alice; audit record {orphaned['alice'].seq})" in message
    assert f"Start the release again (govdeploy release --model {MODEL} --version {version})" in message
    assert "Sent after the process stopped and never read: 1 approval (bob)" in message


def test_the_audit_trail_names_the_accepted_and_the_unread_approvals(
    stack: Settings, orphaned: dict[str, Any]
) -> None:
    mine = [r for r in records(stack, MODEL) if r.payload.get("flow_run_id") == orphaned["run_id"]]
    assert [r.action for r in mine] == ["approval.accepted", "release.abandoned"]
    abandoned = mine[-1]
    assert abandoned.version == orphaned["version"]
    assert abandoned.policy_digest == orphaned["alice"].policy_digest
    assert abandoned.payload["approvers"] == ["alice"]
    assert abandoned.payload["approvals_accepted"] == [
        {"seq": orphaned["alice"].seq, "approver": "alice", "nonce": orphaned["alice"].payload["nonce"]}
    ]
    assert [u["claimed_approver"] for u in abandoned.payload["unread_approvals"]] == ["bob"]
    assert f"(audit record {abandoned.seq})" in (orphaned["state"].message or "")
    assert verify_trail(stack).ok


def test_the_abandonment_is_alerted(orphaned: dict[str, Any]) -> None:
    alerts = [a for a in orphaned["alerts"] if a.get("flow_run_id") == orphaned["run_id"]]
    assert len(alerts) == 1
    assert alerts[0]["event"] == "govdeploy.release.abandoned"
    assert alerts[0]["approvals_accepted"] == 1
    assert alerts[0]["version"] == orphaned["version"]


def test_a_later_approval_is_refused_with_the_reason(stack: Settings, orphaned: dict[str, Any]) -> None:
    run_id = orphaned["run_id"]
    with pytest.raises(ApprovalError, match=r"is not waiting for input \(it is Crashed: the deployments"):
        approve(stack, run_id, "bob")
    with pytest.raises(GovdeployError, match=rf"flow run {run_id} cannot be resumed .* it is Crashed: the"):
        submit(stack, run_id, orphaned["erin_token"])  # a token pasted as into the UI form
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "govdeploy",
            "approve",
            run_id,
            "--approver",
            "bob",
            "--key",
            str(stack.keys_dir / "approvers" / "bob.key"),
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert result.returncode == 1
    assert "approve failed:" in result.stderr and "start the release again" in result.stderr.lower()


def test_a_release_stopped_gracefully_with_its_process_is_recorded_when_it_starts_again(
    stack: Settings,
) -> None:
    """SIGTERM (``govdeploy down``, a service manager, a node drain) instead of SIGKILL. Prefect 3.8
    leaves the paused run Paused here, and the next deployments process ends and records it, once;
    a run Prefect ends Crashed itself is recorded by the crashed-run sweep (unit-tested)."""
    candidate = train_as("dana", model=MODEL, rows=3000, seed=42)
    run_id = start_release(candidate["version"])
    wait_for_state(run_id, "Paused")
    assert manager.stop_one(stack, "deployments")  # SIGTERM to its process group, then a grace
    start_deployments(stack)
    final = flow_runs.wait_for_final(run_id, timeout=90)
    assert final.name == "Crashed", final

    def mine() -> list[str]:
        return [r.action for r in records(stack, MODEL) if r.payload.get("flow_run_id") == run_id]

    assert poll(lambda: "release.abandoned" in mine(), timeout=60), mine()
    assert mine() == ["release.abandoned"]
    assert verify_trail(stack).ok
