"""The keys of an evidence pack, with their dates, and the checks that choose a key by signed time.

``keys/trusted.json`` (covered by the signed manifest, so vouched for by the audit key that signed
it) carries the dates of every key file, every audit key and the approvers' keys. A pack written
before it existed has none: its audit records are checked under the manifest's key, its serving
records under its serving key files without dates, and its approval statements are not checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from govdeploy.config.trust import KeyDates
from govdeploy.errors import ApprovalError
from govdeploy.evidence.pack import KEY_INDEX
from govdeploy.trust.approvals import SignedStatement
from govdeploy.trust.approver_keys import statement_signer
from govdeploy.trust.audit_keys import AuditKeys
from govdeploy.trust.key_dates import DatedKey, PinnedKey, dated_from_json, parse_moment

STATEMENTS = "approvals/statements.json"


@dataclass
class PackKeys:
    """What ``keys/trusted.json`` says (empty for a pack without it), or why it cannot be read."""

    files: dict[str, KeyDates] = field(default_factory=dict)
    audit: AuditKeys | None = None
    approvers: dict[str, list[DatedKey]] = field(default_factory=dict)
    problem: str = ""
    present: bool = False


def read_index(directory: Path) -> PackKeys:
    path = directory / KEY_INDEX
    if not path.is_file():
        return PackKeys()
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        files = {name: KeyDates.model_validate(dates) for name, dates in data.get("files", {}).items()}
        audit = AuditKeys.from_json(data.get("audit", []), f"{KEY_INDEX} audit")
        approvers = {
            approver: [dated_from_json(k, f"{KEY_INDEX} approver {approver}") for k in keys]
            for approver, keys in data.get("approvers", {}).items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return PackKeys(problem=f"{KEY_INDEX} is not a key index ({exc}): no key dates are checked")
    return PackKeys(files, audit if audit.keys else None, approvers, present=True)


def pinned_files(directory: Path, names: list[str], index: PackKeys) -> list[Path]:
    """The pack's key files, each with its dates from the index (none: valid at any time)."""
    return [PinnedKey.of(directory / name, index.files.get(Path(name).name)) for name in names]


def audit_ring(
    manifest_key: ed25519.Ed25519PublicKey, exported_at: str, index: PackKeys
) -> tuple[AuditKeys, list[str]]:
    """The audit keys the records are checked under, and problems with the manifest's key: it must be
    one of them and able to sign at the pack's export time."""
    if index.audit is None:
        return AuditKeys.of(manifest_key), []
    mine = [k for k in index.audit.keys if k.same_key(manifest_key)]
    if not mine:
        return index.audit, [
            f"the manifest's audit key is not among the audit keys of {KEY_INDEX}: the pack's key "
            "index does not come from the deployment that signed it"
        ]
    moment = parse_moment(exported_at)
    if moment is None or not mine[0].dates.signs_at(moment):
        why = mine[0].dates.why_not(moment) if moment else f"exported_at {exported_at!r} is no time"
        return index.audit, [f"the manifest is signed by the audit key {mine[0].describe()} but {why}"]
    return index.audit, []


def check_statements(directory: Path, model: str, version: str, index: PackKeys) -> tuple[list[str], str]:
    """Problems of the pack's approval statements under the approvers' keys of the index, each chosen
    by the statement's ``issued_at``, and a summary line (empty when there are no statements)."""
    path = directory / STATEMENTS
    if not path.is_file():
        return [], ""
    if not index.present:
        return [], f"{STATEMENTS}: the pack carries no approvers' keys, the statements are not checked"
    try:
        statements = [SignedStatement.model_validate(s) for s in json.loads(path.read_text("utf-8"))]
    except (OSError, ValueError, TypeError, ValidationError) as exc:
        return [f"{STATEMENTS} does not hold signed approval statements ({type(exc).__name__})"], ""
    problems = []
    for number, signed in enumerate(statements, start=1):
        problem = _statement_problem(signed, model, version, index)
        if problem:
            problems.append(f"{STATEMENTS} statement {number} ({signed.statement.approver}): {problem}")
    verified = len(statements) - len(problems)
    return problems, (
        f"{verified} of {len(statements)} approval statements verify under the approvers' keys the pack "
        "carries, each under a key valid when it was issued"
    )


def _statement_problem(signed: SignedStatement, model: str, version: str, index: PackKeys) -> str:
    statement = signed.statement
    if (statement.model, statement.version) != (model, version):
        return f"it approves {statement.model} v{statement.version}, not {model} v{version}"
    keys = index.approvers.get(statement.approver)
    if not keys:
        return f"the pack carries no key of approver {statement.approver!r} ({KEY_INDEX} approvers)"
    refusal = f"its signature does not verify under the pack's keys of approver {statement.approver!r}"
    try:
        statement_signer(keys, statement, signed.signature, statement.issued_at, refusal)
    except ApprovalError as exc:
        return str(exc)
    return ""
