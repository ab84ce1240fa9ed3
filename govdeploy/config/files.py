"""Strict loading of config files into typed models.

YAML is read with a safe loader that also refuses duplicate keys; tags that construct Python
objects are refused by the safe loader. Validation errors of the pydantic models are turned into
one ``ConfigError`` that names the file, each offending key and how to fix it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from govdeploy.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class _StrictSafeLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}; keep one of them",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def file_digest(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_text(path: Path, what: str) -> str:
    """Read a config file, or raise ConfigError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist; create it or pass another path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} file {path} cannot be read: {exc}") from exc


def load_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file strictly (no object tags, no duplicate keys)."""
    text = read_text(path, what)
    try:
        return yaml.load(text, Loader=_StrictSafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} file {path} is not valid YAML: {_yaml_reason(exc)}") from exc


def load_json(path: Path, what: str) -> Any:
    """Parse a JSON file, refusing duplicate keys."""
    text = read_text(path, what)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_pairs)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"{what} file {path} is not valid JSON: {exc}") from exc


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}; keep one of them")
        result[key] = value
    return result


def _yaml_reason(exc: yaml.YAMLError) -> str:
    if isinstance(exc, ConstructorError) and exc.problem and "tag" in exc.problem:
        where = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        return f"{exc.problem}{where}; YAML tags that construct objects are not allowed, write plain values"
    return str(exc).replace("\n", " ")


def parse_model(model: type[M], data: Any, path: Path, what: str) -> M:
    """Validate parsed data against a config model, or raise ConfigError with every problem."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{what} file {path} must hold a mapping at the top level, found {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(describe_error(err) for err in exc.errors())
        raise ConfigError(f"{what} file {path} is invalid: {problems}") from None


def describe_error(err: Any) -> str:
    """One validation error as 'key: what is wrong (fix)'."""
    key = ".".join(str(part) for part in err["loc"]) or "<top level>"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{key}' (remove it or fix its spelling)"
    if kind == "missing":
        return f"missing key '{key}' (add it)"
    given = err.get("input")
    shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
    return f"key '{key}' = {shown}: {err['msg']}"
