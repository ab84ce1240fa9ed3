from __future__ import annotations

from pathlib import Path

import pytest

from govdeploy.config.catalog import load_catalog
from govdeploy.config.governance import load_governance
from govdeploy.config.settings import Settings
from govdeploy.errors import ConfigError, DataError
from govdeploy.release.data import dataset_digest, generate_credit_data, load_dataset
from tests.conftest import CONFIG_DIR


def test_generator_is_deterministic_per_seed() -> None:
    a, b = generate_credit_data(300, seed=5), generate_credit_data(300, seed=5)
    assert dataset_digest(a) == dataset_digest(b)
    assert dataset_digest(a) != dataset_digest(generate_credit_data(300, seed=6))


def test_generator_has_features_sensitive_attributes_and_pii() -> None:
    frame = generate_credit_data(2000, seed=1)
    spec = load_catalog(CONFIG_DIR / "models.yaml").get("credit-risk")
    assert set(spec.features + spec.sensitive_attributes + spec.pii_columns + [spec.label]) <= set(frame)
    assert frame["email"].str.contains("@").all()
    assert set(frame["gender"]) == {"F", "M"}
    assert 0.1 < frame["default"].mean() < 0.5


def test_label_bias_raises_one_groups_default_rate() -> None:
    fair = generate_credit_data(4000, seed=2)
    biased = generate_credit_data(4000, seed=2, label_bias=1.0)
    gap = lambda f: f[f.gender == "F"]["default"].mean() - f[f.gender == "M"]["default"].mean()  # noqa: E731
    assert abs(gap(fair)) < 0.05
    assert gap(biased) > 0.2


def test_bad_row_count_and_missing_file() -> None:
    with pytest.raises(DataError, match="rows=0"):
        generate_credit_data(0)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(Path("/nonexistent/data.csv"))


def test_catalog_refuses_pii_as_feature_and_unknown_models(tmp_path: Path) -> None:
    text = (
        (CONFIG_DIR / "models.yaml")
        .read_text()
        .replace("      - region\n", "      - region\n      - email\n")
    )
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"\['email'\] cannot be features"):
        load_catalog(path)
    with pytest.raises(ConfigError, match="model 'fraud' is not in the catalog"):
        load_catalog(CONFIG_DIR / "models.yaml").get("fraud")


def test_governance_cross_checks_policy_and_catalog(tmp_path: Path) -> None:
    for name in ("models.yaml", "expectations/credit_risk.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((CONFIG_DIR / name).read_text())
    policy = (CONFIG_DIR / "policy.yaml").read_text().replace("      age_band:\n", "      religion:\n")
    (tmp_path / "policy.yaml").write_text(policy)
    with pytest.raises(ConfigError, match=r"\['religion'\] are not sensitive_attributes"):
        load_governance(tmp_path, "credit-risk")


def test_settings_refuse_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        Settings(host="0.0.0.0")
    assert Settings(host="127.0.0.2").s3_url.startswith("http://127.0.0.2:")
