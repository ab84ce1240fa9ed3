"""The ``govdeploy`` command line: a thin layer over the core and the flows.

Expected failures are caught once, in ``main``: ``<action> failed: <reason>`` on stderr, exit 1.

Examples:
    govdeploy up                      start the local stack (S3, MLflow, Prefect, deployments)
    govdeploy up --db postgres        the same with MLflow and Prefect on a PostgreSQL server of the stack
    govdeploy status --json           each component's state and URL, for scripts
    govdeploy policy check config/policy.yaml
    govdeploy train --model credit-risk --rows 5000 --submitter dana --key .govdeploy/keys/approvers/dana.key
    govdeploy release --model credit-risk --version 1
    govdeploy demo                    the end-to-end scenario on the local stack
    govdeploy compliance check --json checks as code (exit 0 pass, 1 fail, 2 could not run)
    govdeploy retention enforce --dry-run
    govdeploy down
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import GovdeployError
from govdeploy.trust.approvals import Decision
from govdeploy.trust.signatures import Level

EXAMPLES = """Examples:

  govdeploy up

  govdeploy up --db postgres

  govdeploy status --json

  govdeploy policy check config/policy.yaml

  govdeploy train --model credit-risk --rows 5000

  govdeploy release --model credit-risk --version 1

  govdeploy demo
"""

app = typer.Typer(
    help="govdeploy: governed model deployment on Prefect and MLflow.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Policy-as-code.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
console = Console(stderr=False)
progress_console = Console(stderr=True)


class CommandFailed(Exception):
    """Carries the action name of a failed command to ``main``."""

    def __init__(self, action: str, error: GovdeployError) -> None:
        super().__init__(f"{action} failed: {error}")


def _progress(message: str) -> None:
    progress_console.print(f"[dim]·[/dim] {message}")


class _NoTracebackForExpectedFailures(logging.Filter):
    """Console logs show an expected failure (a GovdeployError) by its message, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], GovdeployError):
            record.exc_info = None
            record.exc_text = None
        return True


def _use_stack(settings: Settings) -> None:
    """Point Prefect and MLflow clients of this process at the stack (local or external).

    Nothing the operator set is replaced: on the external profile ``client_env`` carries the
    operator's own ``PREFECT_API_URL`` and ``MLFLOW_TRACKING_URI`` (and no credentials); on the
    local profile such a variable naming another server is an error naming the fix.
    """
    from govdeploy.stack.components import client_env

    _check_environment(settings)
    os.environ.update(client_env(settings))


def _quiet_expected_failures() -> None:
    """Attach the filter to the console handlers Prefect set up when it was imported."""
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", ""):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.addFilter(_NoTracebackForExpectedFailures())


def _run_flow(name: str, **parameters: Any) -> Any:
    """Run the flow ``flows.<name>.<name>`` against the local stack; expected failures → CommandFailed.

    The stack's URLs are set before the flow module (and so Prefect) is imported: Prefect reads its
    settings at import.
    """
    _use_stack(get_settings())
    flow = getattr(importlib.import_module(f"flows.{name}"), name)
    _quiet_expected_failures()
    try:
        return flow(**parameters)
    except GovdeployError as exc:
        raise CommandFailed(name, exc) from exc


def _serving(model: str) -> tuple[str | None, str | None]:
    """(champion, challenger) the newest signed serving record names; (None, None) if unreadable."""
    from govdeploy.serving import rollout

    _use_stack(get_settings())
    try:
        record = rollout.serving_now(get_settings(), model)
    except GovdeployError:
        return None, None
    return (record.champion, record.challenger) if record else (None, None)


def _champion(model: str) -> str | None:
    return _serving(model)[0]


_FLOW_EXCEPTION = re.compile(r"^Flow run encountered an exception: [\w.]+: ")


def _run_served(deployment: str, action: str, parameters: dict[str, Any], timeout: float) -> str:
    """Run a served deployment (it runs in the deployments process, with the server-side
    configuration: a caller cannot substitute its own policy or approver list) and wait until it
    ends; its id when it completed, CommandFailed with the run's reason otherwise."""
    _use_stack(get_settings())
    from govdeploy.backends import flow_runs

    try:
        run_id = flow_runs.start(deployment, parameters)
        progress_console.print(
            f"[dim]·[/dim] {deployment} run {run_id} started (follow it in the Prefect UI)"
        )
        state = flow_runs.wait_for_final(run_id, timeout)
    except GovdeployError as exc:
        raise CommandFailed(action, exc) from exc
    if not state.is_completed():
        reason = _FLOW_EXCEPTION.sub("", state.message or str(state.name))
        raise CommandFailed(action, GovdeployError(f"{reason} (flow run {run_id}, {state.name})"))
    return run_id


def _status_table(status: Any) -> Table:
    kind = f"{status.profile} profile" + (f", {status.database}" if status.database else "")
    table = Table(title=f"govdeploy stack ({kind}) — state in {status.state_dir}")
    for column in ("component", "state", "url", "pid"):
        table.add_column(column, no_wrap=True)
    for c in status.components:
        colour = {"running": "green", "unhealthy": "yellow", "stopped": "red"}[c.state]
        notes = [note for note in (c.detail, c.action) if note]
        state = f"[{colour}]{c.state}[/{colour}]" + (f" ({'; '.join(notes)})" if notes else "")
        table.add_row(c.name, state, c.url, str(c.pid or "-"))
    table.caption = f"logs: {Path(status.state_dir) / 'logs'}"
    return table


class DatabaseChoice(StrEnum):
    sqlite = "sqlite"
    postgres = "postgres"


@app.command()
def up(
    db: Annotated[
        DatabaseChoice | None,
        typer.Option(
            "--db",
            help="Where the local stack's MLflow and Prefect keep their data: SQLite files, or a PostgreSQL "
            "server the stack runs under the state directory (default: GOVDEPLOY_DATABASE, else what the "
            "state directory holds, else sqlite).",
        ),
    ] = None,
) -> None:
    """Start the local stack; a second call reports what already runs.

    On the external profile (GOVDEPLOY_PROFILE=external) it starts nothing: it checks that MLflow,
    Prefect and the bucket answer.
    """
    from govdeploy.stack.manager import up as stack_up

    settings = get_settings()
    try:
        if db is not None:
            if not settings.local:
                raise GovdeployError(
                    "--db chooses the database of the servers the local profile runs; on the external "
                    "profile their operators configure it"
                )
            settings = settings.model_copy(update={"database": db.value})
        _check_environment(settings)
        status = stack_up(settings, _progress)
    except GovdeployError as exc:
        raise CommandFailed("up", exc) from exc
    console.print(_status_table(status))


def _check_environment(settings: Settings) -> None:
    """Refuse client URL variables that name other servers than the local stack's."""
    from govdeploy.stack.components import environment_conflicts

    conflicts = environment_conflicts(settings)
    if conflicts:
        raise GovdeployError("; ".join(conflicts))


@app.command()
def down() -> None:
    """Stop every component of the local stack (its data stays in the state directory), also a
    server whose launcher exited."""
    from govdeploy.stack.manager import down as stack_down

    try:
        status = stack_down(get_settings(), _progress)
    except GovdeployError as exc:
        raise CommandFailed("down", exc) from exc
    console.print(_status_table(status))


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Each component's state, URL, pid (of the server itself, also when its launcher exited) and log
    file; and what a running gateway reports: its problems, I/O log and shipping backlog."""
    from govdeploy.serving.gateway_client import health
    from govdeploy.stack.manager import status as stack_status

    settings = get_settings()
    try:
        result = stack_status(settings)
    except GovdeployError as exc:
        raise CommandFailed("status", exc) from exc
    running = any(c.name == "gateway" and c.state != "stopped" for c in result.components)
    gateway = health(settings) if running else None
    if as_json:
        print(json.dumps({**result.model_dump(), "gateway": gateway}, indent=2))
        return
    console.print(_status_table(result))
    if gateway is not None:
        console.print(_gateway_summary(gateway), highlight=False, markup=False)


def _gateway_summary(gateway: dict[str, Any]) -> str:
    """The gateway's health in a few lines (its texts printed as data)."""
    lines = [f"gateway: {gateway.get('status')}"]
    if "io_backlog_batches" in gateway:
        g = gateway
        lines.append(
            f"  I/O records written {g.get('io_records_written')}, pending {g.get('io_records_pending')}, "
            f"lost {g.get('io_records_lost')}; shipping backlog {g.get('io_backlog_batches')} batches "
            f"(oldest {g.get('io_backlog_oldest_seconds')} s); refresh failures {g.get('refresh_failures')}"
        )
    lines += [f"  problem: {problem}" for problem in gateway.get("problems") or []]
    return "\n".join(lines)


@policy_app.command("check")
def policy_check(
    path: Annotated[Path | None, typer.Argument(help="Policy file (default config/policy.yaml).")] = None,
    model: Annotated[str, typer.Option(help="Catalog entry to check the policy against.")] = "credit-risk",
) -> None:
    """Validate a policy file, and the catalog and suites beside it; exit 1 on any problem."""
    from govdeploy.config.governance import load_governance

    settings = get_settings()
    policy_path = (path or settings.policy_path).resolve()
    try:
        loaded = load_governance(policy_path.parent, model, policy_path)
    except GovdeployError as exc:
        raise CommandFailed("policy check", exc) from exc
    console.print(
        f"[green]policy OK[/green] {policy_path}\n  digest  {loaded.policy.digest}\n"
        f"  model   {model} ({len(loaded.spec.features)} features, owners recorded)\n"
        f"  suite   {loaded.suite.spec.name} ({len(loaded.suite.spec.expectations)} expectations)"
    )


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Model name in config/models.yaml.")] = "credit-risk",
    rows: Annotated[int, typer.Option(help="Synthetic rows when no --data is given.")] = 5000,
    seed: Annotated[int, typer.Option(help="Generator and split seed.")] = 7,
    label_bias: Annotated[float, typer.Option(help="Bias against one group in synthetic labels.")] = 0.0,
    data: Annotated[Path | None, typer.Option(help="CSV or Parquet training data.")] = None,
    submitter: Annotated[
        str | None, typer.Option(help="Who submits (an id of approvers.yaml; default GOVDEPLOY_USER).")
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="The submitter's private key: signs the submission (proof).")
    ] = None,
) -> None:
    """Train and register a candidate version (runs the train flow against the local stack).

    With --key the submission is signed and the submitter proven; without it the submitter is only
    claimed, and the policy requires one more approval for its release (or refuses it).
    """
    from govdeploy.release.submission import submission_parameters, submission_token

    person = submitter or get_settings().user
    data_path = str(data.resolve()) if data else None
    token = None
    if key is not None:
        signed = submission_parameters(rows, seed, label_bias, data_path=data_path)
        try:
            token = submission_token(model, signed, person, key.expanduser(), 30)
        except GovdeployError as exc:
            raise CommandFailed("train", exc) from exc
    result = _run_flow(
        "train",
        model=model,
        rows=rows,
        seed=seed,
        label_bias=label_bias,
        data_path=data_path,
        submitted_by=person,
        submission=token,
    )
    proof = "proven" if result["submission_proven"] else "claimed, not proven"
    console.print(
        f"[green]registered[/green] {result['model']} version {result['version']} (run {result['run_id']}), "
        f"submitted by {result['submitted_by']} ({proof})"
    )


@app.command()
def release(
    model: Annotated[str, typer.Option(help="Registered model name.")],
    version: Annotated[str, typer.Option(help="Candidate version.")],
    data: Annotated[Path | None, typer.Option(help="CSV or Parquet evaluation data.")] = None,
    canary: Annotated[
        bool, typer.Option(help="Roll out through a canary even if the policy does not require one.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the run to end (approvals included).")
    ] = 4 * 3600,
) -> None:
    """Gate a candidate, wait for signed approvals (see 'approve'), then sign and promote it.

    Runs on the served ``release`` deployment, with the server's policy and approver list.
    """
    parameters = {"model": model, "version": version, "canary": canary}
    if data:
        parameters["data_path"] = str(data.resolve())
    run_id = _run_served("release/release", "release", parameters, timeout)
    champion, challenger = _serving(model)
    role = "champion" if champion == version else "challenger" if challenger == version else None
    where = f"is {role}" if role else "is not serving (its canary was rolled back)"
    console.print(f"[green]released[/green] {model} v{version}: it {where} (flow run {run_id})")


keys_app = typer.Typer(help="Development keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")


@keys_app.command("init")
def keys_init() -> None:
    """Create the missing development keys (model signing, audit, master, approvers, API keys)."""
    from govdeploy.stack.manager import development_keys

    settings = get_settings()
    try:
        created = development_keys(settings)
    except GovdeployError as exc:
        raise CommandFailed("keys init", exc) from exc
    console.print(f"created {', '.join(created)}" if created else "all development keys exist")
    console.print(f"keys directory: {settings.keys_dir} (private keys 0600; never commit them)")


class RotatedRole(StrEnum):
    candidate = "candidate"
    release = "release"
    serving = "serving"
    audit = "audit"
    approver = "approver"


@keys_app.command("rotate")
def keys_rotate(
    role: Annotated[RotatedRole, typer.Option(help="The role whose key is replaced.")],
    approver: Annotated[
        str | None, typer.Option(help="With --role approver: the approver id in approvers.yaml.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="With --role approver: a new file for the approver's new private key (0600)."),
    ] = None,
) -> None:
    """Replace a key: new signatures use a new key from now on; the old one stays listed (retired)
    to verify what it signed before, and signs nothing new; the audit trail records both.

    Examples:
      govdeploy keys rotate --role release
      govdeploy keys rotate --role audit
      govdeploy keys rotate --role approver --approver alice --out ~/keys/alice-2.key
    """
    from govdeploy.config.policy import load_policy
    from govdeploy.config.trust import Role
    from govdeploy.trust.approver_rotation import rotate_approver
    from govdeploy.trust.audit_trail import audit_log
    from govdeploy.trust.rotation import rotate

    settings = get_settings()
    if (role == RotatedRole.approver) != (approver is not None and out is not None):
        raise typer.BadParameter("--approver and --out go with --role approver, and only with it")
    try:
        log = audit_log(settings, load_policy(settings.policy_path).retention.audit_days)
        if approver is not None and out is not None:
            done = rotate_approver(settings, approver, out.expanduser().resolve(), log)
        else:
            done = rotate(settings, cast(Role, role.value), log)
    except GovdeployError as exc:
        raise CommandFailed("keys rotate", exc) from exc
    whose = f"approver {done.approver}'s" if done.approver else f"the {done.role}"
    pinned = settings.approvers_path if done.approver else settings.trust_path
    console.print(
        f"[green]rotated[/green] {whose} key at {done.at.isoformat()} (audit record {done.audit_seq})\n"
        f"  retired  sha256 {done.retired}\n  current  sha256 {done.current}\n"
        f"  {pinned} lists both; commit it with the rotation",
        soft_wrap=True,
    )
    if done.approver and out is not None:
        console.print(f"  new private key {out} (and {out.with_suffix('.pub')}): hand it to {done.approver}")
    if done.role == "audit" and settings.audit_public_key is not None:
        console.print(
            f"  append the new audit public key to GOVDEPLOY_AUDIT_PUBLIC_KEY={settings.audit_public_key}"
        )


@app.command()
def verify(
    model_uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION or models:/NAME@ALIAS")],
    level: Annotated[str, typer.Option(help="candidate or release signature.")] = "release",
) -> None:
    """Re-hash every file of a registered version and check its signature against trusted keys."""
    from govdeploy.trust.roots import load_roots
    from govdeploy.trust.versions import parse_model_uri, verify_version

    settings = get_settings()
    _use_stack(settings)
    if level not in ("candidate", "release"):
        raise CommandFailed("verify", GovdeployError(f"level {level!r} is not 'candidate' or 'release'"))
    try:
        name, version = parse_model_uri(model_uri, settings.mlflow_url)
        check = verify_version(
            name,
            version,
            roots=load_roots(settings),
            level=cast(Level, level),
            tracking_uri=settings.mlflow_url,
        )
    except GovdeployError as exc:
        raise CommandFailed("verify", exc) from exc
    console.print(
        f"[green]verified[/green] {name} v{version}: {check.files} files match the {level} signature\n"
        f"  artifact digest   {check.artifact_digest}\n  signature sha256  {check.signature_sha256}"
    )


def _approval_token(run_id: str, approver: str, key: Path, reject: bool, reason: str) -> tuple[Settings, str]:
    settings = get_settings()
    _use_stack(settings)  # before Prefect is imported: its settings are read at import
    from govdeploy.release.approver import approval_token

    decision: Decision = "reject" if reject else "approve"
    if reject and not reason:
        raise GovdeployError("a rejection needs --reason TEXT")
    return settings, approval_token(settings, run_id, approver, key, decision, reason or "approved")


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="Flow run id of the paused release.")],
    approver: Annotated[str, typer.Option(help="Your approver id in config/approvers.yaml.")],
    key: Annotated[Path, typer.Option(help="Your Ed25519 private key (PEM).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    reason: Annotated[str, typer.Option(help="Why (required with --reject).")] = "",
) -> None:
    """Verify the waiting candidate, sign an approval (or rejection) and resume the release with it."""
    try:
        settings, token = _approval_token(run_id, approver, key, reject, reason)
        from govdeploy.release.approver import submit

        verdict = submit(settings, run_id, token)
    except GovdeployError as exc:
        raise CommandFailed("approve", exc) from exc
    if verdict is None:
        console.print("submitted; the release flow has not recorded a verdict yet (see its logs)")
    elif verdict.action == "approval.refused":
        raise CommandFailed("approve", GovdeployError(f"refused: {verdict.payload['reason']}"))
    else:
        console.print(
            f"[green]{verdict.action}[/green]: {verdict.payload['reason']} (audit record {verdict.seq})"
        )


@app.command("approval-token")
def approval_token_command(
    run_id: Annotated[str, typer.Argument(help="Flow run id of the paused release.")],
    approver: Annotated[str, typer.Option(help="Your approver id in config/approvers.yaml.")],
    key: Annotated[Path, typer.Option(help="Your Ed25519 private key (PEM).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    reason: Annotated[str, typer.Option(help="Why (required with --reject).")] = "",
) -> None:
    """Print a signed approval token to paste into the release's form in the Prefect UI."""
    try:
        _, token = _approval_token(run_id, approver, key, reject, reason)
    except GovdeployError as exc:
        raise CommandFailed("approval-token", exc) from exc
    print(token)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every record's hash, chain and signature under the pinned audit key, and the anchors
    as the locked bucket keeps them (COMPLIANCE lock, retention, times, one version each)."""
    from rich.markup import escape

    from govdeploy.trust.audit_trail import verify_trail

    settings = get_settings()
    try:
        report = verify_trail(settings)
    except GovdeployError as exc:
        raise CommandFailed("audit verify", exc) from exc
    for warning in report.warnings:
        console.print(f"[yellow]warning[/yellow]: {escape(warning)}", soft_wrap=True)
    if not report.ok:
        listed = "".join(f"\n  - {problem}" for problem in report.problems)
        raise CommandFailed(
            "audit verify",
            GovdeployError(f"{settings.audit_log_path}: {len(report.problems)} problem(s):{listed}"),
        )
    console.print(
        f"[green]audit trail intact[/green]: {report.records} records, chain and signatures valid, "
        f"{report.anchors} anchors in bucket {settings.bucket} match and are COMPLIANCE-locked"
        + (f" ({len(report.warnings)} warning(s) above)" if report.warnings else ""),
        soft_wrap=True,
    )


@audit_app.command("show")
def audit_show(
    model: Annotated[str | None, typer.Option(help="Only records of this model.")] = None,
    reveal: Annotated[bool, typer.Option("--reveal", help="Decrypt sealed personal data.")] = False,
) -> None:
    """Who did what, when, under which policy digest. Every cell is plain text, never console
    markup, with control characters shown as escapes."""
    from rich.text import Text

    from govdeploy.trust.audit_trail import records, show_row

    settings = get_settings()
    table = Table(title="govdeploy audit trail")
    for column in ("seq", "time", "actor", "action", "model", "policy", "details"):
        table.add_column(column, overflow="fold")
    try:
        for record in records(settings, model):
            table.add_row(*(Text(cell) for cell in show_row(settings, record, reveal)))
    except GovdeployError as exc:
        raise CommandFailed("audit show", exc) from exc
    console.print(table)


evidence_app = typer.Typer(help="Evidence packs for auditors (offline, signed).", no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")


@evidence_app.command("export")
def evidence_export(
    model_uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION, models:/NAME@ALIAS or NAME@ALIAS")],
    out: Annotated[Path, typer.Option(help="New directory for the pack.")],
) -> None:
    """Write one self-contained, signed evidence pack of a version (verified files, gate, approvals,
    serving periods, audit chain proof, report.html, control matrix)."""
    from govdeploy.evidence.collect import collect, parse_target
    from govdeploy.evidence.pack import write_pack
    from govdeploy.trust.keys import load_ed25519_private

    settings = get_settings()
    _use_stack(settings)
    try:
        name, version = parse_target(model_uri, settings.mlflow_url)
        key = load_ed25519_private(settings.keys_dir / "audit.key", "audit signing key")
        written = write_pack(collect(settings, name, version), out, key)
    except GovdeployError as exc:
        raise CommandFailed("evidence export", exc) from exc
    console.print(
        f"[green]exported[/green] {name} v{version} to {written.directory} ({written.files} files)\n"
        f"  manifest signed by the audit key sha256 {written.fingerprint}\n"
        "  compare it with the pinned audit key; verify: 'govdeploy evidence verify DIR --public-key PEM'",
        soft_wrap=True,
        highlight=False,
    )


@evidence_app.command("verify")
def evidence_verify(
    directory: Annotated[Path, typer.Argument(help="The evidence pack directory.")],
    public_key: Annotated[
        Path | None, typer.Option(help="The pinned audit public key (PEM); default: the pack's own.")
    ] = None,
) -> None:
    """Check a pack offline: signed manifest, every file's digest, audit chain and anchors, serving
    record signatures, model-signing bundles. Exit 1 naming each problem."""
    from rich.markup import escape

    from govdeploy.evidence.verify import verify_pack

    report = verify_pack(directory, public_key.read_bytes() if public_key else None)
    for warning in report.warnings:
        console.print(f"[yellow]warning[/yellow]: {escape(warning)}", soft_wrap=True)
    if not report.ok:
        listed = "".join(f"\n  - {problem}" for problem in report.problems)
        raise CommandFailed(
            "evidence verify", GovdeployError(f"{directory}: {len(report.problems)} problem(s):{listed}")
        )
    console.print(
        f"[green]evidence pack intact[/green] (audit key sha256 {report.fingerprint})", soft_wrap=True
    )
    for line in report.summary:
        console.print(f"  {escape(line)}", soft_wrap=True)


canary_app = typer.Typer(
    help="Canary releases: `govdeploy canary --model M --version V` runs one; `canary abort` ends one.",
    invoke_without_command=True,
)
app.add_typer(canary_app, name="canary")


@canary_app.callback()
def canary(
    context: typer.Context,
    model: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    version: Annotated[str | None, typer.Option(help="The promoted challenger version.")] = None,
) -> None:
    """Run the canary of a promoted challenger through the gateway (rollback on breach).

    Runs on the served ``canary`` deployment.
    """
    if context.invoked_subcommand is not None:
        return
    if not model or not version:
        raise typer.BadParameter("give --model and --version (or a command: abort)")
    run_id = _run_served("canary/canary", "canary", {"model": model, "version": version}, 4 * 3600)
    console.print(f"[green]champion[/green] {model} v{_champion(model)} (flow run {run_id})")


@canary_app.command("abort")
def canary_abort(
    model: Annotated[str, typer.Option(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "aborted from the CLI",
) -> None:
    """End a canary at once: all traffic back to the champion, the challenger removed (signed record,
    audit record). Runs on the served ``canary-abort`` deployment."""
    run_id = _run_served("canary-abort/canary-abort", "canary abort", {"model": model, "reason": reason}, 600)
    champion, challenger = _serving(model)
    what = "no challenger serves" if challenger is None else f"challenger v{challenger} still serves"
    console.print(f"[green]canary ended[/green] {model}: champion v{champion}, {what} (flow run {run_id})")


@app.command()
def rollback(
    model: Annotated[str, typer.Option(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "requested from the CLI",
) -> None:
    """Return serving to the previous verified champion at once (and stop any canary).

    Runs on the served ``rollback`` deployment.
    """
    before = _champion(model)
    run_id = _run_served("rollback/rollback", "rollback", {"model": model, "reason": reason}, 600)
    console.print(
        f"[green]rolled back[/green] {model}: champion v{before} → v{_champion(model)} (flow run {run_id})"
    )


@app.command()
def drift(
    model: Annotated[str, typer.Option(help="Registered model name.")],
    window_hours: Annotated[
        int | None, typer.Option(help="Hours of gateway traffic (default: the policy's).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="End of the window, ISO 8601 (default: now).")] = None,
    start: Annotated[
        str | None, typer.Option(help="Start of the window, ISO 8601 (default: end - window hours).")
    ] = None,
) -> None:
    """Check the serving version's traffic for drift now; the policy decides what happens next."""
    result = _run_flow("drift", model=model, window_hours=window_hours, end=end, start=start)
    decision = result["decision"]
    console.print(
        f"[bold]{decision['action']}[/bold] {model} v{result['version']}: {'; '.join(decision['reasons'])}\n"
        f"report: {result['report_url']}"
        + (f"\nevents: {', '.join(result['events'])}" if result["events"] else "")
    )


@app.command()
def gateway(
    port: Annotated[int | None, typer.Option(help="Port (default GOVDEPLOY_GATEWAY_PORT).")] = None,
) -> None:
    """Run the serving gateway in the foreground (govdeploy up runs it in the background), in
    GOVDEPLOY_GATEWAY_WORKERS processes."""
    from govdeploy.serving.gateway.run import main as run_gateway

    _use_stack(get_settings())
    run_gateway(["--port", str(port)] if port else [])


@app.command()
def demo() -> None:
    """Start the stack and run the end-to-end scenario: train → gates, with two rejections."""
    from govdeploy.stack.manager import development_keys

    settings = get_settings()
    try:  # the servers' credentials must be in the environment before Prefect is imported
        development_keys(settings)
    except GovdeployError as exc:
        raise CommandFailed("demo", exc) from exc
    _use_stack(settings)
    from demo.scenario import run_demo

    _quiet_expected_failures()

    try:
        ok = run_demo(settings, _progress, console)
    except GovdeployError as exc:
        raise CommandFailed("demo", exc) from exc
    if not ok:
        raise typer.Exit(1)


retention_app = typer.Typer(
    help="Retention of the I/O log (policy retention.io_log_days).", no_args_is_help=True
)
compliance_app = typer.Typer(help="Compliance checks as code.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")
app.add_typer(compliance_app, name="compliance")


@retention_app.command("enforce")
def retention_enforce(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what is past retention; delete nothing.")
    ] = False,
) -> None:
    """Delete the I/O log's days past retention.io_log_days, in the bucket (every version; never one
    under Object Lock) and in the gateway's <state>/iolog; each day deleted is an audit record.

    Example: govdeploy retention enforce --dry-run
    """
    from govdeploy.config.policy import load_policy
    from govdeploy.monitoring.retention import enforce

    settings = get_settings()
    try:
        report = enforce(settings, load_policy(settings.policy_path), dry_run=dry_run)
    except GovdeployError as exc:
        raise CommandFailed("retention enforce", exc) from exc
    verb = "would delete" if dry_run else "deleted"
    for day in report.deleted:
        extra = f", {day.locked} kept under Object Lock" if day.locked else ""
        extra += f", {day.unshipped} never shipped" if day.unshipped else ""
        console.print(
            f"{verb} {day.where} {day.day}: {day.count} objects, {day.bytes} bytes{extra}", highlight=False
        )
    if report.problems:
        raise CommandFailed("retention enforce", GovdeployError("; ".join(report.problems)))
    console.print(
        f"[green]retention[/green]: {len(report.deleted)} day(s) {verb}; I/O log kept from "
        f"{report.first_kept_day} on ({report.io_log_days} days)"
    )


@compliance_app.command("check")
def compliance_check(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON report to this file.")
    ] = None,
    registry: Annotated[
        bool,
        typer.Option("--registry", help="Also check the running stack: bucket retention, serving evidence."),
    ] = False,
    expiry_days: Annotated[
        int, typer.Option(help="Report keys whose valid_until is this close.", min=0)
    ] = 30,
) -> None:
    """Check the configuration, keys and retention (and with --registry the serving versions'
    evidence): exit 0 when every check passes, 1 when one fails, 2 when one could not run.

    Example: govdeploy compliance check --json --out compliance.json
    """
    from govdeploy.compliance.suite import check
    from govdeploy.serving.gateway.access import load_access

    try:  # exit 2: the check could not run
        settings = get_settings()
        if registry:
            _use_stack(settings)
    except (GovdeployError, ValidationError) as exc:
        reason = _settings_problems(exc) if isinstance(exc, ValidationError) else str(exc)
        print(f"compliance check could not run: {reason}", file=sys.stderr)
        raise typer.Exit(2) from exc
    report = check(settings, load_access, stack=registry, expiry_days=expiry_days)
    if out is not None:
        out.write_text(report.to_json() + "\n", encoding="utf-8")
    if as_json:
        print(report.to_json())
    else:
        console.print(_compliance_table(report))
    raise typer.Exit(report.exit_code)


def _compliance_table(report: Any) -> Table:
    from rich.text import Text

    colours = {"pass": "green", "fail": "red", "error": "yellow", "skip": "dim"}
    table = Table(title=f"govdeploy compliance check: {report.status} ({report.checked_at})")
    for column in ("check", "status", "summary"):
        table.add_column(column, overflow="fold")
    for result in report.checks:
        table.add_row(result.name, Text(result.status, style=colours[result.status]), Text(result.summary))
    return table


def _settings_problems(error: ValidationError) -> str:
    """Each invalid setting as ``GOVDEPLOY_<NAME>: <reason>`` (a reason alone when it is about several)."""
    found = []
    for item in error.errors():
        reason = str(item["msg"]).removeprefix("Value error, ")
        name = "_".join(str(part) for part in item["loc"]).upper()
        variable = name if name.startswith("GOVDEPLOY_") else f"GOVDEPLOY_{name}"
        found.append(f"{variable}: {reason}" if name else reason)
    return "; ".join(found)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except CommandFailed as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(1)
    except (GovdeployError, ValidationError) as exc:  # raised before a command could name itself
        reason = _settings_problems(exc) if isinstance(exc, ValidationError) else str(exc)
        action = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "govdeploy")
        print(f"{action} failed: {reason}", file=sys.stderr)
        sys.exit(1)
