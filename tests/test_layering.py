"""The layering of the code base, checked on every import statement (also those inside functions).

    flows → tasks → govdeploy core ← gateway (govdeploy.serving.gateway, part of the core)

- the core (every package of ``govdeploy`` but ``stack`` and the ``cli`` entry point) imports
  neither Prefect nor ``flows``, ``tasks`` or ``demo``;
- only ``govdeploy.backends`` imports the clients of the servers: ``mlflow``, ``boto3``/``botocore``
  and ``prefect``;
- nothing outside ``govdeploy.stack`` imports it, but the entry points (``govdeploy.cli``) and
  the demo tooling;
- ``tasks`` never imports ``flows``;
- ``govdeploy.config`` imports no other package of govdeploy (but ``errors``);
- the gateway (``govdeploy.serving.gateway``) is a leaf: monitoring, trust and the rest never read
  through its modules.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("govdeploy", "tasks", "flows", "demo")
SERVER_CLIENTS = ("mlflow", "boto3", "botocore", "prefect")
CORE_PACKAGES = ("config", "trust", "release", "serving", "monitoring", "backends", "stack", "cli")


@dataclass(frozen=True)
class Rule:
    name: str
    applies: tuple[str, ...]  # module prefixes the rule constrains
    forbidden: tuple[str, ...]  # imported module prefixes they may not use
    exempt: tuple[str, ...] = ()  # module prefixes the rule does not constrain


RULES = (
    Rule(
        "the core imports no orchestration layer nor demo tooling",
        ("govdeploy",),
        ("flows", "tasks", "demo"),
        exempt=("govdeploy.cli",),
    ),
    Rule(
        "only govdeploy.backends talks to MLflow, S3 and Prefect",
        ("govdeploy",),
        SERVER_CLIENTS,
        exempt=("govdeploy.backends",),
    ),
    Rule(
        "only the entry points and the demo use the local stack",
        ("govdeploy", "tasks", "flows"),
        ("govdeploy.stack",),
        exempt=("govdeploy.stack", "govdeploy.cli"),
    ),
    Rule("tasks never import flows", ("tasks",), ("flows",)),
    Rule(
        "only serving, the entry points and the stack use the gateway's modules",
        ("govdeploy",),
        ("govdeploy.serving.gateway",),
        exempt=("govdeploy.serving", "govdeploy.cli", "govdeploy.stack"),
    ),
    Rule(
        "configuration is the bottom layer of the core",
        ("govdeploy.config",),
        tuple(f"govdeploy.{p}" for p in CORE_PACKAGES if p != "config"),
    ),
)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import in the file; ``from a import b`` counts as ``a.b``."""
    found: list[tuple[int, str]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(root: Path) -> list[str]:
    """Every import under ``root`` that breaks a rule, as ``path:line: module imports X (rule)``."""
    problems: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            for line, imported in imports(path, module):
                for rule in RULES:
                    constrained = _within(module, rule.applies) and not _within(module, rule.exempt)
                    if constrained and _within(imported, rule.forbidden):
                        where = path.relative_to(root)
                        problems.append(f"{where}:{line}: {module} imports {imported} ({rule.name})")
    return problems


def test_the_code_base_keeps_its_layers() -> None:
    assert violations(ROOT) == []


def test_a_forbidden_import_is_reported(tmp_path: Path) -> None:
    (tmp_path / "govdeploy" / "monitoring").mkdir(parents=True)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "govdeploy" / "monitoring" / "window.py").write_text(
        "def read():\n    from prefect import flow\n    import boto3\n    from tasks.drift import x\n"
    )
    (tmp_path / "tasks" / "drift.py").write_text("from flows.drift import drift\n")
    (tmp_path / "govdeploy" / "trust").mkdir()
    (tmp_path / "govdeploy" / "trust" / "keys.py").write_text("from ..stack import components\n")
    found = violations(tmp_path)
    assert [f.split(" (")[0] for f in found] == [
        "govdeploy/monitoring/window.py:2: govdeploy.monitoring.window imports prefect.flow",
        "govdeploy/monitoring/window.py:3: govdeploy.monitoring.window imports boto3",
        "govdeploy/monitoring/window.py:4: govdeploy.monitoring.window imports tasks.drift.x",
        "govdeploy/trust/keys.py:1: govdeploy.trust.keys imports govdeploy.stack.components",
        "tasks/drift.py:1: tasks.drift imports flows.drift.drift",
    ]


def test_backends_may_use_the_server_clients(tmp_path: Path) -> None:
    (tmp_path / "govdeploy" / "backends").mkdir(parents=True)
    (tmp_path / "govdeploy" / "backends" / "registry.py").write_text("import mlflow\nimport boto3\n")
    assert violations(tmp_path) == []
