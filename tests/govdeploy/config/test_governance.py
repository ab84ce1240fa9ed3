"""One digest over every configuration file a decision depends on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from govdeploy.config.governance import load_governance, mirror_digest
from govdeploy.errors import ConfigError
from tests.conftest import CONFIG_DIR

MODEL = "credit-risk"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return Path(shutil.copytree(CONFIG_DIR, tmp_path / "config"))


@pytest.mark.parametrize("name", ["policy.yaml", "models.yaml", "approvers.yaml", "access.yaml"])
def test_a_change_to_any_file_changes_the_digest(config: Path, name: str) -> None:
    before = load_governance(config, MODEL)
    (config / name).write_text((config / name).read_text() + "\n# edited\n")
    after = load_governance(config, MODEL)
    assert after.digest != before.digest
    assert after.policy.digest == before.policy.digest or name == "policy.yaml"


def test_a_change_to_the_suite_changes_the_digest(config: Path) -> None:
    before = load_governance(config, MODEL).digest
    suite = next((config / "expectations").glob("*.json"))
    suite.write_text(suite.read_text() + "\n")
    assert load_governance(config, MODEL).digest != before


def test_an_invalid_approver_list_fails_the_load(config: Path) -> None:
    (config / "approvers.yaml").write_text("approvers: {}\n")
    with pytest.raises(ConfigError, match="approvers"):
        load_governance(config, MODEL)


def test_the_advisory_mirror_is_covered_by_the_digest(config: Path) -> None:
    before = load_governance(config, MODEL)
    mirror = config / "advisories" / "pypi-seed.osv.json"
    assert before.file_digests["advisories/pypi-seed.osv.json"] == mirror_digest(mirror)
    mirror.write_text(mirror.read_text() + "\n")
    assert load_governance(config, MODEL).digest != before.digest


def test_a_mirror_directory_is_digested_by_relative_names(config: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "osv", tmp_path / "b" / "osv"
    for where in (first, second):
        (where / "PYSEC").mkdir(parents=True)
        (where / "PYSEC" / "one.json").write_text('{"id": "PYSEC-1"}')
    assert mirror_digest(first) == mirror_digest(second)
    (second / "PYSEC" / "two.json").write_text('{"id": "PYSEC-2"}')
    assert mirror_digest(first) != mirror_digest(second)


def test_a_policy_without_a_mirror_leaves_the_digest_as_it_was(config: Path) -> None:
    (config / "advisories" / "pypi-seed.osv.json").unlink()
    loaded = load_governance(config, MODEL)
    assert not [name for name in loaded.file_digests if name.startswith("advisories/")]
