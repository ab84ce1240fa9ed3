"""Request bodies checked against a model's MLflow input signature before the model sees them.

A body is ``{"inputs": {...}}`` (one row) or ``{"inputs": [{...}, ...]}`` (a batch). Every
declared field must be present with its type (double: a finite number, long: an integer, string:
text); fields the catalog lists as personal data may come along (they are masked in the logs and
never reach the model); any other field is refused.

A feedback body is ``{"labels": [{"request_id": ..., "label": 0 or 1}, ...]}`` or one such object:
the ground truth of earlier predictions, named by the request_id their answer carried (whether
each was issued to the caller is the route's check, ``access.RequestIds``).

Bodies are parsed by ``parse_json``, which refuses what could never be checked or logged: bytes that
are not UTF-8, lone surrogates (``"\\ud800"``), numbers beyond a double, nesting deeper than 1024.
``NaN`` and ``Infinity`` are parsed, so that the field holding one is named (it must be finite).
Every refusal is an ``InputError``; the values it echoes back are shortened (``shown``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from govdeploy.trust.request_ids import REQUEST_ID

NUMERIC_TYPES = {"double", "float"}
INTEGER_TYPES = {"long", "integer"}
SHOWN_CHARS = 64  # the most characters of a client's value or field name an error echoes back
OTHER = "other"  # the metric label of every field that is not an input of the model
_ROW_FIELD = re.compile(r"inputs\[\d+\]\.(.*)", re.DOTALL)
_CONSTANT = re.compile(rb"(?<![\w\"])-?(?:NaN|Infinity)\b")  # not JSON, but Python's json writes them
INT64 = range(-(2**63), 2**63)


def shown(text: str) -> str:
    """``text`` as an error message may echo it: at most ``SHOWN_CHARS`` characters."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


class InputError(ValueError):
    """A request body that does not match the signature; ``field`` names the offender (shortened)."""

    def __init__(self, field: str, message: str) -> None:
        field = shown(field)
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body; InputError naming the problem for anything else."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        hint = " (lone surrogates such as \\ud800 are not text)" if "surrogate" in str(exc) else ""
        refusal = InputError("body", f"is not valid UTF-8 JSON: {exc}{hint}")
    if _CONSTANT.search(raw) is None:
        raise refusal
    return _with_constants(raw, refusal)


def _integer(text: str) -> int | float:
    return int(text) if len(text) <= 20 else float(text)  # as orjson: a longer one is a double


def _with_constants(raw: bytes, refusal: InputError) -> Any:
    """A body with NaN or Infinity, parsed as Python's json does, refused like any other otherwise."""
    try:
        value = json.loads(raw, parse_int=_integer)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # lone surrogates do not encode
    except (ValueError, RecursionError, UnicodeError):
        raise refusal from None
    return value


def metric_field(field: str, known: frozenset[str]) -> str:
    """The metric label of an ``InputError`` field: an input field of the model, else ``OTHER``."""
    found = _ROW_FIELD.fullmatch(field)
    name = found.group(1) if found else field
    return name if name in known else OTHER


def rows_of(body: Any, max_rows: int) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or "inputs" not in body:
        raise InputError("inputs", 'the body must be {"inputs": {...}} or {"inputs": [{...}, ...]}')
    extra = sorted(set(body) - {"inputs"})
    if extra:
        raise InputError(extra[0], "unknown top-level field; send only 'inputs'")
    inputs = body["inputs"]
    rows = [inputs] if isinstance(inputs, dict) else inputs
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise InputError("inputs", "must be an object or a non-empty list of objects")
    if len(rows) > max_rows:
        raise InputError("inputs", f"{len(rows)} rows exceed the limit of {max_rows} per request")
    return rows


def check_value(field: str, value: Any, kind: str) -> Any:
    if value is None:
        raise InputError(field, "is null; send a value")
    if kind in NUMERIC_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(field, f"must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise InputError(field, "must be finite (NaN and Infinity are refused)")
        return float(value)
    if kind in INTEGER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(field, f"must be an integer, got {type(value).__name__}")
        if value not in INT64:
            raise InputError(field, "is out of the range of a 64-bit integer")
        return value
    if not isinstance(value, str):
        raise InputError(field, f"must be a string, got {type(value).__name__}")
    return value


def check_personal(field: str, value: Any) -> Any:
    """A personal-data value: a string, a number or null (it is tokenised, never nested)."""
    if value is not None and not isinstance(value, str | int | float):
        raise InputError(field, f"must be a string, a number or null, got {type(value).__name__}")
    return value


def validate_rows(
    body: Any, schema: dict[str, str], passthrough: frozenset[str], max_rows: int
) -> list[dict[str, Any]]:
    """The rows of a body, typed per the signature (passthrough fields kept for masking)."""
    rows = rows_of(body, max_rows)
    checked = []
    for index, row in enumerate(rows):
        prefix = f"inputs[{index}]." if len(rows) > 1 else ""
        unknown = sorted(set(row) - set(schema) - passthrough)
        if unknown:
            raise InputError(prefix + unknown[0], "is not an input of this model")
        missing = [name for name in schema if name not in row]
        if missing:
            raise InputError(prefix + missing[0], "is missing")
        typed = {name: check_value(prefix + name, row[name], kind) for name, kind in schema.items()}
        typed.update({name: check_personal(prefix + name, row[name]) for name in passthrough if name in row})
        checked.append(typed)
    return checked


LABEL_FIELDS = ("request_id", "label")


def _label(prefix: str, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InputError(prefix.rstrip("."), 'must be an object {"request_id": ..., "label": 0 or 1}')
    unknown = sorted(set(item) - set(LABEL_FIELDS))
    if unknown:
        raise InputError(prefix + unknown[0], "is not a field of a label; send request_id and label")
    for name in LABEL_FIELDS:
        if name not in item:
            raise InputError(prefix + name, "is missing")
    request_id, label = item["request_id"], item["label"]
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise InputError(
            prefix + "request_id", "must be the request_id of a prediction (32 lowercase hex characters)"
        )
    if isinstance(label, bool) or not isinstance(label, int) or label not in (0, 1):
        raise InputError(prefix + "label", f"must be 0 or 1, got {shown(repr(label))}")
    return {"request_id": request_id, "label": label}


def feedback_labels(body: Any, max_items: int) -> list[dict[str, Any]]:
    """The labels of a feedback body: ``{"labels": [{"request_id", "label"}, ...]}`` or one label."""
    if isinstance(body, dict) and "labels" in body:
        extra = sorted(set(body) - {"labels"})
        if extra:
            raise InputError(extra[0], "unknown top-level field; send only 'labels'")
        items = body["labels"]
        if not isinstance(items, list) or not items:
            raise InputError("labels", "must be a non-empty list of {request_id, label} objects")
    elif isinstance(body, dict):
        items = [body]
    else:
        raise InputError("labels", 'the body must be {"labels": [{"request_id": ..., "label": 0 or 1}, ...]}')
    if len(items) > max_items:
        raise InputError("labels", f"{len(items)} labels exceed the limit of {max_items} per request")
    several = "labels" in body
    labels, seen = [], set()
    for index, item in enumerate(items):
        label = _label(f"labels[{index}]." if several else "", item)
        if label["request_id"] in seen:
            raise InputError(f"labels[{index}].request_id", "appears twice; send one label per request_id")
        seen.add(label["request_id"])
        labels.append(label)
    return labels
