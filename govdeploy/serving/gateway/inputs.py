"""Request bodies checked against a model's MLflow input signature before the model sees them.

A body is ``{"inputs": {...}}`` (one row) or ``{"inputs": [{...}, ...]}`` (a batch). Every
declared field must be present with its type (double: a finite number, long: an integer, string:
text); fields the catalog lists as personal data may come along (they are masked in the logs and
never reach the model); any other field is refused.

A feedback body is ``{"labels": [{"request_id": ..., "label": 0 or 1}, ...]}`` or one such object:
the ground truth of earlier predictions, named by the request_id their answer carried (whether
each was issued to the caller is the route's check, ``access.RequestIds``).
"""

from __future__ import annotations

import math
from typing import Any

from govdeploy.trust.request_ids import REQUEST_ID

NUMERIC_TYPES = {"double", "float"}
INTEGER_TYPES = {"long", "integer"}


class InputError(ValueError):
    """A request body that does not match the signature; ``field`` names the offender."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


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
        return value
    if not isinstance(value, str):
        raise InputError(field, f"must be a string, got {type(value).__name__}")
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
        typed.update({name: row[name] for name in passthrough if name in row})
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
        raise InputError(prefix + "label", f"must be 0 or 1, got {label!r}")
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
