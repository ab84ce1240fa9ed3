"""Every third-party package the code imports is a declared dependency in pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = {"govdeploy", "tasks", "flows", "demo"}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def imported_modules() -> set[str]:
    names: set[str] = set()
    for package in OWN:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - OWN


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_normal(re.split(r"[\[<>=!~ ;]", d)[0]) for d in project["dependencies"]}
    distributions = packages_distributions()
    undeclared = {
        module: sorted(distributions.get(module, ["(not installed)"]))
        for module in imported_modules()
        if not {_normal(d) for d in distributions.get(module, [])} & declared
    }
    assert undeclared == {}, f"imported but not in pyproject.toml dependencies: {undeclared}"
