"""Environment capture and a CycloneDX SBOM of the running Python environment."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from govdeploy.config.settings import PROJECT_ROOT
from govdeploy.errors import GovdeployError


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """The checked-out commit (with '+dirty' for local changes), or 'unknown' outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    found = {dist.metadata["Name"].lower(): dist.version for dist in metadata.distributions()}
    return dict(sorted(found.items()))


def capture_environment() -> dict[str, Any]:
    """What a release needs to be reproduced: interpreter, platform, packages, code version."""
    return {
        "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "git_commit": git_commit(),
        "packages": installed_packages(),
    }


def write_sbom(path: Path) -> dict[str, Any]:
    """Write a CycloneDX JSON SBOM of this interpreter's environment; return it parsed."""
    command = [
        sys.executable,
        "-m",
        "cyclonedx_py",
        "environment",
        sys.executable,
        "--output-format",
        "JSON",
        "--output-file",
        str(path),
    ]
    try:
        subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    except subprocess.CalledProcessError as exc:
        raise GovdeployError(
            f"SBOM generation failed ({' '.join(command[2:5])}): {exc.stderr.strip()[-500:]}"
        ) from exc
    sbom: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return sbom


def environment_key(env: dict[str, Any]) -> str:
    """Digest of what an SBOM describes: interpreter, platform and package versions."""
    subject = {"python": env["python"], "platform": env["platform"], "packages": env["packages"]}
    return hashlib.sha256(json.dumps(subject, sort_keys=True).encode()).hexdigest()


def cached_sbom(cache_dir: Path, env: dict[str, Any]) -> Path:
    """The SBOM of this environment, generated once per distinct environment (it takes ~20 s)."""
    path = cache_dir / f"sbom-{environment_key(env)[:16]}.cdx.json"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        write_sbom(partial)
        partial.replace(path)
    return path
