from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from govdeploy.config.policy import load_policy
from govdeploy.errors import ConfigError
from tests.conftest import CONFIG_DIR

POLICY = (CONFIG_DIR / "policy.yaml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_bundled_policy_loads_with_its_digest() -> None:
    policy = load_policy(CONFIG_DIR / "policy.yaml")
    assert policy.digest == hashlib.sha256((CONFIG_DIR / "policy.yaml").read_bytes()).hexdigest()
    assert policy.gates.performance.minimums["roc_auc"] == 0.75
    assert set(policy.gates.fairness.attributes) == {"gender", "age_band"}
    assert policy.canary.steps[-1] == 100
    assert policy.signing_keys.rotation_days == 365
    vulnerabilities = policy.gates.vulnerabilities
    assert vulnerabilities is not None and vulnerabilities.max_severity == "HIGH"
    assert (CONFIG_DIR / str(vulnerabilities.file)).is_file()


def test_sections_added_later_have_defaults(tmp_path: Path) -> None:
    """A policy written before the vulnerability gate and key rotation still loads: no scan, 365 days."""
    start = POLICY.index("  vulnerabilities:")
    end = POLICY.index("\napproval:")
    older = POLICY[:start] + POLICY[end + 1 :]
    older = older[: older.index("\nkeys:")] + "\n"
    policy = load_policy(write(tmp_path, older))
    assert policy.gates.vulnerabilities is None and policy.signing_keys.rotation_days == 365
    ignored = POLICY.replace(
        "    ignore: []",
        "    ignore: [{id: CVE-2024-1, reason: 'not reachable from our code', until: 2027-01-31}]",
    )
    gate = load_policy(write(tmp_path, ignored)).gates.vulnerabilities
    assert gate is not None and str(gate.ignore[0].until) == "2027-01-31"


def test_digest_changes_with_any_edit(tmp_path: Path) -> None:
    edited = load_policy(write(tmp_path, POLICY.replace("roc_auc: 0.75", "roc_auc: 0.76")))
    assert edited.digest != load_policy(CONFIG_DIR / "policy.yaml").digest


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    min_rows: 500",
            "    min_rows: 500\n    min_rowz: 3",
            "unknown key 'gates.data_validation.min_rowz'",
        ),
        ("  quorum: 2", "  quorum: two", "key 'approval.quorum' = 'two'"),
        ("      roc_auc: 0.75", "      roc_auc: 1.75", "key 'gates.performance.minimums.roc_auc' = 1.75"),
        ("      roc_auc: 0.75", "      gini: 0.75", "unknown metric(s) ['gini']"),
        ("  quorum: 2", "  quorum: 0", "key 'approval.quorum' = 0"),
        ("  steps: [5, 25, 50, 100]", "  steps: [50, 25, 100]", "must strictly increase"),
        ('  schedule: "0 2 * * *"', '  schedule: "nightly"', "not a 5-field cron"),
        ("version: 1", "version: 2", "key 'version' = 2"),
        (
            "    pii_columns: [email, phone]",
            "    pii_columns: [email, phone, ssn]",
            "personal data is never a feature",
        ),
        (
            "    max_severity: HIGH",
            "    max_severity: SEVERE",
            "key 'gates.vulnerabilities.max_severity' = 'SEVERE'",
        ),
        ("    source: file ", "    source: nvd ", "key 'gates.vulnerabilities.source' = 'nvd'"),
        (
            "    file: advisories/pypi-seed.osv.json",
            "",
            "give `file` (an OSV advisory file) for source: file",
        ),
        (
            "    ignore: []",
            "    ignore: [{id: CVE-2024-1, reason: short}]",
            "key 'gates.vulnerabilities.ignore.0.reason' = 'short'",
        ),
        (
            "    ignore: []",
            "    ignore: [{id: X-1, reason: 'does not apply here'}, {id: X-1, reason: 'does not apply here'}]",
            "ignore lists ['X-1'] more than once",
        ),
        ("  rotation_days: 365", "  rotation_days: 0", "key 'keys.rotation_days' = 0"),
        ("  rotation_days: 365", "  rotation_days: 4000", "key 'keys.rotation_days' = 4000"),
    ],
)
def test_invalid_values_are_named(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in POLICY
    with pytest.raises(ConfigError) as caught:
        load_policy(write(tmp_path, POLICY.replace(old, new)))
    assert expected in str(caught.value)
    assert str(tmp_path / "policy.yaml") in str(caught.value)


def test_missing_section_is_named(tmp_path: Path) -> None:
    text = POLICY.replace("  fairness:\n", "  unfairness:\n")
    with pytest.raises(ConfigError, match=r"missing key 'gates.fairness' \(add it\)"):
        load_policy(write(tmp_path, text))


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = POLICY.replace("  quorum: 2", "  quorum: 2\n  quorum: 3")
    with pytest.raises(ConfigError, match="duplicate key 'quorum'"):
        load_policy(write(tmp_path, text))


def test_object_constructing_tags_are_refused(tmp_path: Path) -> None:
    text = POLICY.replace("  quorum: 2", "  quorum: !!python/object/apply:os.system ['true']")
    with pytest.raises(ConfigError, match="tags that construct objects are not allowed"):
        load_policy(write(tmp_path, text))


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_policy(write(tmp_path, "gates: [unclosed"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_policy(write(tmp_path, "- just\n- a list\n"))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "absent.yaml")
