"""The human-readable side of an evidence pack: the facts (``report.json``) and a printable HTML
page with a model card, the gate, approvals, serving periods, audit records, the control matrix and
a few inline SVG charts (no external resources)."""

from __future__ import annotations

import json
import re
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from govdeploy.evidence.pack import Collected

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _load(files: dict[str, bytes], name: str) -> Any:
    data = files.get(name)
    return json.loads(data) if data else None


def _number(text: Any) -> float | None:
    found = NUMBER.search(str(text))
    return float(found.group()) if found else None


def build_facts(collected: Collected, files: dict[str, bytes]) -> dict[str, Any]:
    """The facts of the pack as one JSON-able document (what ``report.html`` shows)."""
    from govdeploy.evidence.pack import serving_periods

    gate = collected.gate_run or {}
    report = gate.get("report") or {}
    checks = list(report.get("checks") or [])
    evaluation = report.get("evaluation") or {}
    version_records = [
        r for r in collected.audit_records if r.model == collected.model and r.version == collected.version
    ]
    catalog = collected.catalog or {}
    lineage = _load(files, "artifacts/governance/lineage.json") or {}
    owners = _load(files, "artifacts/governance/owners.json") or catalog.get("owners") or {}
    return {
        "format": "govdeploy-evidence-report/1",
        "model": collected.model,
        "version": collected.version,
        "exported_at": collected.exported_at,
        "identity": _load(files, "artifacts/govdeploy-identity.json"),
        "release_claims": _load(files, "artifacts/govdeploy-release.json"),
        "verification": collected.transcript,
        "gate": {
            "verdict": collected.tags.get("govdeploy.gate"),
            "run_id": gate.get("run_id"),
            "policy_digest": collected.tags.get("govdeploy.gate.policy_digest"),
            "summary": report.get("summary") or collected.tags.get("govdeploy.gate.summary"),
            "metrics": gate.get("metrics", {}),
            "checks": checks,
        },
        "approvals": [
            {
                k: a.get("statement", {}).get(k)
                for k in ("approver", "decision", "reason", "issued_at", "flow_run_id")
            }
            for a in _approval_statements(files)
        ],
        "serving_periods": serving_periods(collected.serving_records, collected.version),
        "audit": {
            "records_in_pack": len(collected.audit_records),
            "first_seq": collected.audit_records[0].seq if collected.audit_records else None,
            "last_seq": collected.audit_records[-1].seq if collected.audit_records else None,
            "anchors": len(collected.anchors),
            "sealed_records": sum(1 for r in collected.audit_records if "sealed" in r.payload),
            "version_records": [
                {"seq": r.seq, "time": r.time, "actor": r.actor, "action": r.action} for r in version_records
            ],
        },
        "model_card": {
            "owners": owners,
            "intended_use": catalog.get("description") or "not recorded in the catalog",
            "features": [*catalog.get("numeric_features", []), *catalog.get("categorical_features", [])],
            "label": catalog.get("label"),
            "sensitive_attributes": catalog.get("sensitive_attributes", []),
            "personal_data_columns": catalog.get("pii_columns", []),
            "training_data": {
                k: lineage.get(k)
                for k in (
                    "dataset_digest",
                    "dataset_rows",
                    "expectation_suite",
                    "expectation_suite_digest",
                    "expectations_met",
                    "policy_digest",
                    "source",
                )
            },
            "metrics": evaluation.get("metrics") or gate.get("metrics", {}),
            "fairness": [c for c in checks if c.get("gate") == "fairness"],
            "privacy": [c for c in checks if c.get("gate") == "privacy"],
            "limitations": _limitations(checks, catalog),
        },
    }


def _approval_statements(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return list(_load(files, "approvals/statements.json") or [])


def _limitations(checks: list[dict[str, Any]], catalog: dict[str, Any]) -> list[str]:
    found = [f"{c.get('gate')}: {c.get('reason')}" for c in checks if not c.get("passed", True)]
    found.append(
        "trained and evaluated on the dataset named in the lineage only; performance on other "
        "populations is not evidenced"
    )
    if catalog.get("sensitive_attributes"):
        found.append(f"fairness checked for {', '.join(catalog['sensitive_attributes'])} only")
    return found


# --- SVG -------------------------------------------------------------------------------------


def _bars(title: str, rows: list[tuple[str, float, float | None, bool]]) -> str:
    """Horizontal bars: label, value, threshold (a tick), passed (colour)."""
    if not rows:
        return f"<p class='muted'>{escape(title)}: nothing recorded.</p>"
    top = max([v for _, v, _, _ in rows] + [t for _, _, t, _ in rows if t is not None] + [1e-9])
    width, label_w, row_h = 640, 230, 22
    height = row_h * len(rows) + 30
    parts = [
        f"<svg role='img' aria-label='{escape(title)}' width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg' font-family='sans-serif' font-size='11'>",
        f"<text x='0' y='12' font-weight='bold'>{escape(title)}</text>",
    ]
    scale = (width - label_w - 60) / top
    for i, (label, value, threshold, passed) in enumerate(rows):
        y = 20 + i * row_h
        colour = "#3a7d44" if passed else "#b23a3a"
        parts.append(f"<text x='0' y='{y + 13}'>{escape(label[:36])}</text>")
        parts.append(
            f"<rect x='{label_w}' y='{y + 3}' width='{max(value * scale, 1):.1f}' height='14' "
            f"fill='{colour}'/>"
        )
        parts.append(f"<text x='{label_w + value * scale + 4:.1f}' y='{y + 14}'>{value:g}</text>")
        if threshold is not None:
            x = label_w + threshold * scale
            parts.append(
                f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y}' y2='{y + 20}' stroke='#000' "
                "stroke-width='2' stroke-dasharray='3,2'/>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _check_rows(checks: list[dict[str, Any]], gates: set[str]) -> list[tuple[str, float, float | None, bool]]:
    rows = []
    for check in checks:
        if check.get("gate") not in gates:
            continue
        value = _number(check.get("value"))
        if value is None:
            continue
        rows.append(
            (str(check.get("name")), value, _number(check.get("threshold")), bool(check.get("passed")))
        )
    return rows


def _timeline(periods: list[dict[str, Any]]) -> str:
    if not periods:
        return "<p class='muted'>No signed serving record names this version.</p>"
    width, step = 640, max(40, min(120, 600 // len(periods)))
    parts = [
        f"<svg role='img' aria-label='serving timeline' width='{width}' height='150' "
        "xmlns='http://www.w3.org/2000/svg' font-family='sans-serif' font-size='10'>",
        "<text x='0' y='12' font-weight='bold'>Share of traffic per signed serving record</text>",
    ]
    for i, period in enumerate(periods):
        x = 10 + i * step
        h = period["weight"] * 0.9
        colour = "#3a7d44" if period["role"] == "champion" else "#d28b26"
        parts.append(f"<rect x='{x}' y='{110 - h:.1f}' width='{step - 8}' height='{h:.1f}' fill='{colour}'/>")
        parts.append(f"<text x='{x}' y='{106 - h:.1f}'>{period['weight']}%</text>")
        parts.append(
            f"<text x='{x}' y='124'>#{period['sequence']} {escape(str(period['action']))[:14]}</text>"
        )
        parts.append(f"<text x='{x}' y='138'>{escape(str(period['issued_at']))[5:16]}</text>")
    parts.append("</svg>")
    return "".join(parts)


# --- HTML ------------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p class='muted'>None.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222;font-size:13px}
h1{font-size:20px}h2{font-size:16px;border-bottom:1px solid #999;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 5px;
text-align:left;vertical-align:top;word-break:break-word}th{background:#eee}.muted{color:#777}
.gap{color:#b23a3a;font-weight:bold}.ok{color:#3a7d44;font-weight:bold}code{font-size:11px}
@media print{h2{page-break-after:avoid}table,svg{page-break-inside:avoid}}
"""


def render_html(facts: dict[str, Any]) -> str:
    """One printable page; every value escaped, no script, no external resource."""
    card, gate, audit = facts["model_card"], facts["gate"], facts["audit"]
    verification = facts.get("verification") or {}
    owners = card.get("owners") or {}
    training = card.get("training_data") or {}
    sections = [
        f"<h1>Evidence pack — {escape(facts['model'])} v{escape(facts['version'])}</h1>",
        f"<p>Exported {escape(facts['exported_at'])}. Verify offline with "
        f"<code>govdeploy evidence verify DIR --public-key AUDIT_PUBLIC_KEY.pem</code>.</p>",
        "<h2>Model card</h2>",
        f"<p><b>Intended use:</b> {escape(str(card['intended_use']))}</p>",
        _table(
            ["custodian of", "name", "email"],
            [[role, o.get("name"), o.get("email")] for role, o in owners.items() if isinstance(o, dict)],
        ),
        f"<p><b>Label:</b> {escape(str(card.get('label')))} · <b>features:</b> "
        f"{escape(', '.join(card.get('features') or []))}<br><b>Sensitive attributes:</b> "
        f"{escape(', '.join(card.get('sensitive_attributes') or []) or 'none')} · <b>personal data columns "
        f"(never features):</b> {escape(', '.join(card.get('personal_data_columns') or []) or 'none')}</p>",
        "<h3>Training data and lineage</h3>",
        _table(["field", "value"], [[k, v] for k, v in training.items()]),
        "<h3>Metrics</h3>",
        _table(["metric", "value"], [[k, v] for k, v in sorted((card.get("metrics") or {}).items())]),
        "<h3>Fairness</h3>",
        _bars(
            "Fairness per attribute against the policy limit (dashed)",
            _check_rows(card["fairness"], {"fairness"}),
        ),
        "<h3>Privacy findings</h3>",
        _table(
            ["check", "value", "threshold", "passed", "reason"],
            [
                [c.get("name"), c.get("value"), c.get("threshold"), c.get("passed"), c.get("reason")]
                for c in card["privacy"]
            ],
        ),
        "<h3>Limitations</h3><ul>" + "".join(f"<li>{escape(x)}</li>" for x in card["limitations"]) + "</ul>",
        "<h2>Verification at export</h2>",
        _table(["field", "value"], [[k, json_text(v)] for k, v in verification.items() if k != "files"]),
        "<h2>Release gate</h2>",
        f"<p>Verdict: <b>{escape(str(gate.get('verdict') or 'no gate run recorded'))}</b> · run "
        f"{escape(str(gate.get('run_id')))} · policy {escape(str(gate.get('policy_digest')))}</p>",
        _bars(
            "Gate checks: value and policy threshold (dashed)",
            _check_rows(
                gate["checks"], {"performance", "regression", "data_validation", "vulnerabilities", "privacy"}
            ),
        ),
        _table(
            ["gate", "check", "value", "threshold", "passed"],
            [
                [c.get("gate"), c.get("name"), c.get("value"), c.get("threshold"), c.get("passed")]
                for c in gate["checks"]
            ],
        ),
        "<h2>Approvals (signed statements)</h2>",
        _table(
            ["approver", "decision", "reason", "issued at", "flow run"],
            [
                [a["approver"], a["decision"], a["reason"], a["issued_at"], a["flow_run_id"]]
                for a in facts["approvals"]
            ],
        ),
        "<h2>Serving periods (signed serving records)</h2>",
        _timeline(facts["serving_periods"]),
        _table(
            ["sequence", "action", "issued at", "role", "weight %", "killed"],
            [
                [p["sequence"], p["action"], p["issued_at"], p["role"], p["weight"], p["killed"] or ""]
                for p in facts["serving_periods"]
            ],
        ),
        "<h2>Audit trail</h2>",
        f"<p>Records {audit['first_seq']}..{audit['last_seq']} ({audit['records_in_pack']}) with "
        f"{audit['anchors']} anchors are in the pack; those of this version:</p>",
        _table(
            ["seq", "time", "actor", "action"],
            [[r["seq"], r["time"], r["actor"], r["action"]] for r in audit["version_records"]],
        ),
        "<h2>Control matrix (maturity model levels 1-3)</h2>",
        _controls(facts.get("controls") or []),
    ]
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Evidence "
        f"{escape(facts['model'])} v{escape(facts['version'])}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )


def json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _controls(rows: list[dict[str, Any]]) -> str:
    head = (
        "<tr>"
        + "".join(
            f"<th>{h}</th>" for h in ("id", "level", "stream", "control", "status", "evidence in the pack")
        )
        + "</tr>"
    )
    body = []
    for row in rows:
        status = (
            "<span class='ok'>evidenced</span>"
            if row["status"] == "evidenced"
            else f"<span class='gap'>gap</span>: {escape(str(row['gap']))}"
        )
        body.append(
            f"<tr><td>{escape(row['id'])}</td><td>{row['level']}</td><td>{escape(row['stream'])}</td>"
            f"<td>{escape(row['control'])}<br><span class='muted'>{escape(row['where'])}</span></td>"
            f"<td>{status}</td><td>{escape(', '.join(row['evidence']))}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
