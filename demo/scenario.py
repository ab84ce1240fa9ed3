"""The end-to-end demo scenario on the local stack.

A fair candidate passes the gates and waits for approval on the served deployment; its submitter's
own approval is refused, two risk officers sign and it is promoted with a release signature that
is then verified, and the gateway serves it. An improved candidate is released through a canary
under synthetic traffic and becomes champion; a miscalibrated one (scores shifted up) passes the
gates but is rolled back by the canary. A candidate trained on historically biased labels is
rejected by the fairness gate; corrupted evaluation data is rejected by data validation. Then the
drift loop: shifted traffic makes the drift check decide to retrain, and the automation's retrain
leaves a new candidate paused for approval; ground truth that contradicts the model makes it roll
back to the previous verified champion at once. The audit trail is verified last.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from rich.console import Console

from demo.traffic import Traffic, send_feedback, send_rows, wait_until_logged
from flows.drift import drift
from flows.release import release
from flows.train import train
from govdeploy.backends import flow_runs, registry
from govdeploy.config.catalog import load_catalog
from govdeploy.config.policy import load_policy
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError, PolicyGateError, ValidationGateError
from govdeploy.release.approver import approval_token, submit
from govdeploy.release.data import generate_credit_data
from govdeploy.release.submission import submission_parameters, submission_token
from govdeploy.serving import rollout
from govdeploy.stack.manager import up
from govdeploy.trust.audit_trail import verify_trail
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import verify_version

MODEL = "credit-risk"
SUBMITTER = "dana"
DRIFT_ROWS = 600  # requests per drift window (the policy needs drift.min_rows = 500)


@dataclass
class StepResult:
    step: str
    expected: str
    got: str
    detail: str

    @property
    def as_expected(self) -> bool:
        return self.expected == self.got


def corrupted_evaluation_data(settings: Settings) -> str:
    """Evaluation data with missing values and out-of-range incomes (a broken upstream feed)."""
    frame = generate_credit_data(1500, seed=99)
    frame.loc[frame.index[:40], "income"] = -1.0
    frame.loc[frame.index[40:80], "region"] = None
    path = settings.state_dir / "demo" / "corrupted-evaluation.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return str(path)


def _gate_outcome(step: str, expected: str, version: str, data_path: str | None = None) -> StepResult:
    try:
        result = release(model=MODEL, version=version, data_path=data_path, approval_timeout_seconds=1)
    except ValidationGateError as exc:
        return StepResult(step, expected, "rejected: data validation", str(exc))
    except PolicyGateError as exc:
        return StepResult(step, expected, "rejected: policy gate", str(exc))
    except GovdeployError as exc:
        return StepResult(step, expected, "passed the gates", str(exc))
    return StepResult(step, expected, "promoted", str(result))


def _attempt(settings: Settings, run_id: str, approver: str) -> StepResult:
    key = settings.keys_dir / "approvers" / f"{approver}.key"
    expected = "refused" if approver == SUBMITTER else "accepted"
    token = approval_token(settings, run_id, approver, key, "approve", "reviewed the gate evidence")
    verdict = submit(settings, run_id, token)
    if verdict is None:
        return StepResult(f"{approver} approves", expected, "no verdict", "the flow recorded nothing in time")
    got = verdict.action.removeprefix("approval.")
    return StepResult(
        f"{approver} approves", expected, got, f"{verdict.payload['reason']} (audit record {verdict.seq})"
    )


def _approval_path(settings: Settings, version: str, progress: Callable[[str], None]) -> list[StepResult]:
    run_id = flow_runs.start("release/release", {"model": MODEL, "version": version})
    progress(f"release v{version} runs on the served deployment; waiting for it to pause for approval")
    flow_runs.wait_for_state(run_id, "Paused")
    outcomes = [
        StepResult(
            f"release v{version}: gates",
            "paused for approval",
            "paused for approval",
            f"waits for 2 signed approvals: {settings.prefect_ui_url}/runs/flow-run/{run_id}",
        )
    ]
    for approver in (SUBMITTER, "alice", "bob"):
        progress(f"{approver} signs an approval statement")
        outcomes.append(_attempt(settings, run_id, approver))
    flow_runs.wait_for_state(run_id, "Completed")
    release_tag = json.loads(registry.version_tags(MODEL, version, settings.mlflow_url)["govdeploy.release"])
    outcomes.append(
        StepResult(
            f"release v{version}: promotion",
            "promoted",
            "promoted",
            f"alias {release_tag['alias']} → v{version}, approved by "
            + " and ".join(release_tag["approvers"]),
        )
    )
    check = verify_version(
        MODEL,
        version,
        roots=load_roots(settings),
        level="release",
        tracking_uri=settings.mlflow_url,
    )
    outcomes.append(
        StepResult(
            f"govdeploy verify models:/{MODEL}@champion",
            "verified",
            "verified",
            f"{check.files} files match the release signature; digest {check.artifact_digest[:16]}…",
        )
    )
    outcomes.append(_gateway_outcome(settings, version))
    return outcomes


def _key(settings: Settings, principal: str) -> str:
    return (settings.keys_dir / "api" / f"{principal}.key").read_text()


def _rows(settings: Settings, count: int, seed: int, shift: float = 0.0) -> list[dict[str, Any]]:
    """Client requests: the model's features and an email (personal data the gateway tokenises)."""
    return _records(settings, generate_credit_data(count, seed=seed, shift=shift))


def _records(settings: Settings, frame: pd.DataFrame) -> list[dict[str, Any]]:
    return list(frame[[*_features(settings.models_path), "email"]].to_dict(orient="records"))


@functools.cache
def _features(catalog: Path) -> tuple[str, ...]:
    return tuple(load_catalog(catalog).models[MODEL].features)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _gateway_outcome(settings: Settings, version: str) -> StepResult:
    """The gateway picks up the verified champion and answers an authenticated prediction."""
    base = f"{settings.gateway_url}/v1/models/{MODEL}"
    httpx.post(f"{base}/reload", headers={"X-API-Key": _key(settings, "deployer")}, timeout=60)
    answer = send_rows(
        settings.gateway_url, _key(settings, "demo-client"), MODEL, _rows(settings, 1, seed=5)
    )[0]
    return StepResult(
        "gateway predicts",
        f"answered by v{version}",
        f"answered by v{answer.version}" if answer.status == 200 else f"HTTP {answer.status}",
        f"POST {base}/predict → probability of default {answer.score or 0:.3f} "
        "(the email field is tokenised in the I/O log)",
    )


def _canary_release(
    settings: Settings, version: str, expected: str, bake: float, progress: Callable[[str], None]
) -> list[StepResult]:
    """A release with a canary: approvals, then traffic steps judged on live synthetic traffic."""
    parameters = {"model": MODEL, "version": version, "canary": True, "canary_bake_seconds": bake}
    run_id = flow_runs.start("release/release", parameters)
    progress(f"release v{version} with a canary: waiting for it to pause for approval")
    flow_runs.wait_for_state(run_id, "Paused")
    outcomes = [o for o in (_attempt(settings, run_id, a) for a in ("alice", "bob")) if not o.as_expected]
    progress(f"canary of v{version}: synthetic clients send traffic through the gateway")
    with Traffic(
        settings.gateway_url, _key(settings, "bench"), MODEL, _rows(settings, 2000, seed=21)
    ) as traffic:
        state = flow_runs.wait_for_final(run_id, timeout=600)
    if state.is_completed():
        steps = load_policy(settings.policy_path).canary.steps
        got, detail = "champion", "every step passed: " + " → ".join(f"{w}%" for w in steps)
    else:
        got, detail = "rolled back", (state.message or str(state.name)).split("RolloutError: ")[-1]
    champion = rollout.serving_champion(settings, MODEL)
    served = Counter(a.version for a in traffic.answers if a.status == 200)
    detail += f"; champion now v{champion}; {len(traffic.answers)} requests, answered by " + ", ".join(
        f"v{v}: {n}" for v, n in sorted(served.items())
    )
    return [*outcomes, StepResult(f"canary of v{version}", expected, got, detail)]


def _drift_outcomes(settings: Settings, progress: Callable[[str], None]) -> list[StepResult]:
    """Shifted traffic → drift → retrain → a candidate paused for approval; collapse → rollback."""
    bench = _key(settings, "bench")
    champion = rollout.serving_champion(settings, MODEL)
    progress("drift: clients send shifted traffic (higher incomes and debt) through the gateway")
    since, start = time.time(), _now()
    send_rows(settings.gateway_url, bench, MODEL, _rows(settings, DRIFT_ROWS, seed=31, shift=0.5))
    wait_until_logged(settings, start, DRIFT_ROWS)  # shipped to the bucket within a second or so
    result = drift(model=MODEL, start=start)
    decision = result["decision"]
    outcomes = [
        StepResult(
            f"govdeploy drift (champion v{champion}, shifted traffic)",
            "retrain",
            decision["action"],
            "; ".join(decision["reasons"]) + f"; Evidently report: {result['report_url']}",
        )
    ]
    progress("the drift automation retrains; waiting for the new candidate's release to pause for approval")
    outcomes.append(_paused_retrain(since))

    progress("performance collapse: ground truth for fresh traffic contradicts the model")
    since, start = time.time(), _now()
    frame = generate_credit_data(DRIFT_ROWS, seed=32)
    answers = send_rows(settings.gateway_url, bench, MODEL, _records(settings, frame))
    send_feedback(
        settings.gateway_url,
        bench,
        MODEL,
        [(a.request_id, 1 - int(y)) for a, y in zip(answers, frame["default"], strict=True)],
    )
    wait_until_logged(settings, start, DRIFT_ROWS, labels=DRIFT_ROWS)
    result = drift(model=MODEL, start=start)
    decision = result["decision"]
    outcomes.append(
        StepResult(
            f"govdeploy drift (champion v{champion}, labels arrive)",
            "rollback_and_retrain",
            decision["action"],
            "; ".join(decision["reasons"]),
        )
    )
    progress("the rollback automation returns serving to the previous verified champion")
    rolled = flow_runs.wait_for_run("rollback/rollback", since, timeout=180)
    now_serving = rollout.serving_champion(settings, MODEL)
    outcomes.append(
        StepResult(
            "automatic rollback",
            "completed",
            str(rolled.state.name if rolled.state else "unknown").lower(),
            f"champion v{champion} → v{now_serving} (signature re-verified); a retrain was started too",
        )
    )
    return outcomes


def _paused_retrain(since: float) -> StepResult:
    try:
        retrain = flow_runs.wait_for_run("retrain/retrain", since, timeout=240)
        release = flow_runs.wait_for_run("release/release", since, "Paused", timeout=240)
    except GovdeployError as exc:
        return StepResult("retrain → release", "paused for approval", "not paused", str(exc))
    return StepResult(
        "retrain → release",
        "paused for approval",
        "paused for approval",
        f"retrain run {retrain.name} trained v{release.parameters['version']} on shift "
        f"{float(retrain.parameters['shift']):.2f}; its release (gates passed, canary next) waits: "
        f"govdeploy approve {release.id} --approver alice --key …",
    )


def _train(settings: Settings, **parameters: Any) -> dict[str, Any]:
    """The train flow, submitted by ``SUBMITTER`` with a submission signed by her key."""
    key = settings.keys_dir / "approvers" / f"{SUBMITTER}.key"
    token = submission_token(MODEL, submission_parameters(**parameters), SUBMITTER, key, 30)
    result: dict[str, Any] = train(model=MODEL, **parameters, submission=token)
    return result


def run_demo(settings: Settings, progress: Callable[[str], None], console: Console) -> bool:
    """Run the scenario; print what happened and where to look; True if all went as expected."""
    progress("starting the local stack")
    up(settings, progress)
    progress(f"training a fair candidate (submitted by {SUBMITTER})")
    fair = _train(settings, rows=5000, seed=7)
    progress("training a candidate on historically biased labels")
    biased = _train(settings, rows=5000, seed=8, label_bias=0.8)
    outcomes = [
        StepResult(
            "train fair candidate",
            "registered",
            "registered",
            f"version {fair['version']}, signed, digest {fair['artifact_digest'][:16]}…",
        ),
        StepResult("train biased candidate", "registered", "registered", f"version {biased['version']}"),
    ]
    outcomes += _approval_path(settings, fair["version"], progress)
    progress("training an improved candidate and releasing it through a canary")
    improved = _train(settings, rows=6000, seed=17)
    outcomes += _canary_release(settings, improved["version"], "champion", 5.0, progress)
    progress("training a miscalibrated candidate (defaults weighted 3x) and releasing it through a canary")
    skewed = _train(settings, rows=5000, seed=18, positive_weight=3.0)
    # a longer bake: ~250 challenger requests at 5 %, so the mean score is measured to about ±0.02
    outcomes += _canary_release(settings, skewed["version"], "rolled back", 20.0, progress)
    outcomes += _drift_outcomes(settings, progress)
    progress(f"release gates for biased v{biased['version']}")
    outcomes.append(
        _gate_outcome(f"release v{biased['version']}", "rejected: policy gate", biased["version"])
    )
    progress("release gates on corrupted evaluation data")
    outcomes.append(
        _gate_outcome(
            f"release v{fair['version']} on corrupted data",
            "rejected: data validation",
            fair["version"],
            corrupted_evaluation_data(settings),
        )
    )
    trail = verify_trail(settings)
    outcomes.append(
        StepResult(
            "govdeploy audit verify",
            "intact",
            "intact" if trail.ok else "BROKEN",
            f"{trail.records} records, {trail.anchors} anchors"
            + ("" if trail.ok else ": " + "; ".join(trail.problems)),
        )
    )
    outcomes.append(_evidence_outcome(settings))
    _report(outcomes, settings, console)
    return all(o.as_expected for o in outcomes)


def _evidence_outcome(settings: Settings) -> StepResult:
    """Export the champion's evidence pack to .govdeploy/evidence/<model>-v<N> and verify it offline."""
    import shutil

    from govdeploy.evidence.collect import collect
    from govdeploy.evidence.pack import write_pack
    from govdeploy.evidence.verify import verify_pack
    from govdeploy.trust.keys import load_ed25519_private

    step = "govdeploy evidence export/verify (champion)"
    champion = rollout.serving_champion(settings, MODEL)
    if champion is None:
        return StepResult(step, "verified", "no champion", "no signed serving record names a champion")
    out = settings.state_dir / "evidence" / f"{MODEL}-v{champion}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        key = load_ed25519_private(settings.keys_dir / "audit.key", "audit signing key")
        written = write_pack(collect(settings, MODEL, champion), out, key)
    except GovdeployError as exc:
        return StepResult(step, "verified", "not exported", str(exc))
    report = verify_pack(out, (settings.keys_dir / "audit.pub").read_bytes())
    detail = f"{out} ({written.files} files, audit key sha256 {written.fingerprint[:16]}…); open report.html"
    return StepResult(
        step,
        "verified",
        "verified" if report.ok else "BROKEN",
        detail if report.ok else "; ".join(report.problems),
    )


def _report(outcomes: list[StepResult], settings: Settings, console: Console) -> None:
    console.rule("govdeploy demo — what happened")
    for o in outcomes:
        verdict = "[green]✔[/green]" if o.as_expected else "[red]✘[/red]"
        surprise = "" if o.as_expected else f" [red](expected {o.expected})[/red]"
        console.print(f"{verdict} [bold]{o.step}[/bold] → {o.got}{surprise}")
        console.print(f"    {o.detail}", style="dim", highlight=False)
    console.rule("where to look")
    console.print(
        f"Prefect UI   {settings.prefect_ui_url}/runs  — flow runs; gate tables under Artifacts\n"
        f"MLflow UI    {settings.mlflow_url}/#/models/{MODEL}  — versions, governance tags, gate runs\n"
        f"S3 endpoint  {settings.s3_url}  — bucket {settings.bucket} (versioned, object-locked)\n"
        f"gateway      {settings.gateway_url}/v1/models/{MODEL}/predict  (keys: {settings.keys_dir}/api)\n"
        f"audit trail  govdeploy audit show   (verify: govdeploy audit verify)\n"
        f"logs         {settings.state_dir / 'logs'}\n"
        "Try it yourself: 'govdeploy train', then 'govdeploy release --model credit-risk --version N';\n"
        "while it waits, approve from another terminal:\n"
        f"  govdeploy approve RUN_ID --approver alice --key {settings.keys_dir}/approvers/alice.key\n"
        "The stack keeps running for the UIs; stop it with 'make down'.",
        highlight=False,
    )
