"""The pause form's schema, as the Prefect server checks it on resume: every token the code signs
passes, a mistyped one is refused while the form is open, and a bare ``{"token": ...}`` (the CLI)
still reaches the ledger whatever it holds."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from prefect._internal.pydantic.v2_schema import create_v2_schema
from prefect.utilities.schema_tools.validation import ValidationError, validate

from govdeploy.trust.approvals import ApprovalRequest, make_statement, read_approval_token, sign_statement
from tasks.approval_form import ApprovalInput
from tasks.artifacts import table_rows

REQUEST = ApprovalRequest(
    flow_run_id="0c0e7e3c-1c59-4a5e-9f0e-3f7f1f0f0f0f",
    model="m",
    version="1",
    artifact_digest="a" * 64,
    submitted_by="dana",
    policy_digest="p" * 64,
)


def schema() -> dict[str, Any]:
    form = ApprovalInput.with_initial_data(description="## Approve?")
    return create_v2_schema(form.__name__, model_base=form)


def accepted(run_input: dict[str, Any]) -> bool:
    try:
        validate(run_input, schema(), raise_on_error=True)
    except ValidationError:
        return False
    return True


def token(reason: str = "", approver: str = "a") -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return sign_statement(make_statement(REQUEST, approver, "approve", reason, 30), key)


@pytest.mark.parametrize("reason", ["", "ok", "long " * 390, "ünïcødé ✓ / + = _ -"])
def test_every_signed_token_passes_the_form(reason: str) -> None:
    made = token(reason)
    assert read_approval_token(made)  # what the ledger reads
    standard = base64.b64encode(base64.urlsafe_b64decode(made)).decode()
    wrapped = "\n".join(made[i : i + 76] for i in range(0, len(made), 76))
    for text in (made, standard, wrapped, f"  {made}\n"):
        assert read_approval_token(text)
        assert accepted({"decision": "approve", "reason": "", "token": text})


@pytest.mark.parametrize(
    "text", ["", "not a token!", "eyJ" * 10, "[" * 13_000, token() + "!", token() + "===", "a" * 16_385]
)
def test_a_mistyped_token_is_refused_while_the_form_is_open(text: str) -> None:
    assert not accepted({"decision": "approve", "reason": "", "token": text})


def test_the_cli_shape_still_reaches_the_ledger() -> None:
    assert accepted({"token": "[" * 13_000})  # refused and recorded by the ledger, not here
    received = ApprovalInput(token="t")
    assert received.model_fields_set == {"token"}  # no decision stated: the signed one counts
    assert not accepted({"token": "t", "approver": "alice"})  # unknown fields stay refused


def test_the_form_offers_a_decision_and_a_reason() -> None:
    properties = schema()["properties"]
    assert properties["decision"]["enum"] == ["approve", "reject"]
    assert properties["decision"]["default"] == "approve"
    assert properties["reason"]["default"] == ""
    assert schema()["required"] == ["token"]


def test_table_cells_show_as_written() -> None:
    rows = table_rows([{"threshold": ">= 0.75", "value": 0.81, "passed": True, "name": "a|b"}])
    assert rows == [{"threshold": "\\>= 0.75", "value": 0.81, "passed": True, "name": "a\\|b"}]
