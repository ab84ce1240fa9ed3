"""Datasets: the bundled synthetic credit-risk generator, loading files, and digests.

The generator is deterministic for a seed. It makes numeric and categorical features, two
sensitive attributes (``gender``, ``age_band``) that the label does not depend on, personal data
(``email``, ``phone``) that must never become a feature, and a ``region`` that correlates with
``gender``. ``label_bias`` adds historical bias against one gender to the labels, so a model
trained on such data learns it through ``region``: a candidate the fairness gate must reject.
``shift`` moves income and debt-to-income, as drifting traffic would.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from govdeploy.errors import DataError

EMPLOYMENT = ("salaried", "self_employed", "unemployed", "retired")
PURPOSE = ("car", "home", "education", "business", "personal")
REGIONS = ("north", "south", "east", "west", "central")
FIRST_NAMES = ("ana", "ben", "chloe", "dev", "eva", "finn", "gita", "hugo", "ines", "jon")
LAST_NAMES = ("smith", "garcia", "kowalski", "nguyen", "okafor", "rossi", "silva", "tanaka")


def generate_credit_data(
    rows: int, seed: int = 7, label_bias: float = 0.0, shift: float = 0.0
) -> pd.DataFrame:
    """Generate ``rows`` synthetic loan applications with a ``default`` label."""
    if rows <= 0:
        raise DataError(f"rows={rows} must be positive; ask for at least 1 row")
    rng = np.random.default_rng(seed)
    gender = rng.choice(np.array(["F", "M"]), size=rows)
    age = rng.integers(18, 80, size=rows)
    frame = pd.DataFrame(
        {
            "applicant_id": [f"A{seed:04d}-{i:07d}" for i in range(rows)],
            "email": _emails(rng, rows),
            "phone": [f"+1-555-{n // 10000:03d}-{n % 10000:04d}" for n in rng.integers(0, 10**7, rows)],
            "gender": gender,
            "age_band": pd.cut(age, bins=[17, 29, 49, 120], labels=["18-29", "30-49", "50+"]).astype(str),
            "income": np.round(rng.lognormal(10.8 + shift, 0.45, rows), 2),
            "loan_amount": np.round(rng.lognormal(9.3, 0.6, rows), 2),
            "loan_term_months": rng.choice(np.array([12, 24, 36, 48, 60]), size=rows),
            "credit_history_years": np.round(rng.gamma(2.5, 3.0, rows), 1),
            "num_late_payments": rng.poisson(0.8, rows),
            "debt_to_income": np.round(np.clip(rng.beta(2.2, 5.0, rows) + shift * 0.5, 0, 1.5), 3),
            "employment_type": rng.choice(np.array(EMPLOYMENT), size=rows, p=[0.62, 0.2, 0.08, 0.1]),
            "purpose": rng.choice(np.array(PURPOSE), size=rows),
            "region": _regions(rng, gender),
        }
    )
    frame["default"] = _labels(rng, frame, label_bias)
    return frame


def _emails(rng: np.random.Generator, rows: int) -> list[str]:
    first = rng.choice(np.array(FIRST_NAMES), size=rows)
    last = rng.choice(np.array(LAST_NAMES), size=rows)
    return [f"{f}.{ln}{i}@example.com" for i, (f, ln) in enumerate(zip(first, last, strict=True))]


def _regions(rng: np.random.Generator, gender: np.ndarray) -> np.ndarray:
    """Region is a proxy of gender: most F applicants live east, few M applicants do."""
    p_f = [0.1, 0.1, 0.6, 0.1, 0.1]
    p_m = [0.25, 0.25, 0.05, 0.25, 0.2]
    regions = np.empty(gender.shape, dtype=object)
    is_f = gender == "F"
    regions[is_f] = rng.choice(np.array(REGIONS), size=int(is_f.sum()), p=p_f)
    regions[~is_f] = rng.choice(np.array(REGIONS), size=int((~is_f).sum()), p=p_m)
    return regions.astype(str)


def _labels(rng: np.random.Generator, frame: pd.DataFrame, label_bias: float) -> np.ndarray:
    ratio = frame["loan_amount"] / frame["income"]
    employment = frame["employment_type"].map(
        {"salaried": 0.0, "self_employed": 0.4, "unemployed": 1.4, "retired": 0.2}
    )
    logit = (
        -1.9
        + 6.0 * (frame["debt_to_income"] - 0.3)
        + 0.75 * frame["num_late_payments"]
        + 4.0 * (ratio - 0.25)
        - 0.06 * frame["credit_history_years"]
        + 0.01 * (frame["loan_term_months"] - 36)
        + employment
        + label_bias * 2.5 * (frame["gender"] == "F")
    )
    probability = 1.0 / (1.0 + np.exp(-logit.to_numpy(dtype=float)))
    return (rng.random(len(frame)) < probability).astype(int)


def load_dataset(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet dataset; raise DataError naming the file on any problem."""
    if not path.exists():
        raise DataError(f"dataset {path} does not exist; check the path")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pandas raises many unrelated types for unreadable files
        raise DataError(f"dataset {path} cannot be read as {path.suffix or 'CSV'}: {exc}") from exc
    return frame


def dataset_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the dataset's canonical CSV form (column order and values, no index)."""
    csv = frame.to_csv(index=False, lineterminator="\n", float_format="%.10g")
    return hashlib.sha256(csv.encode("utf-8")).hexdigest()


def split_frame(frame: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic train/test split of a frame's rows."""
    rng = np.random.default_rng(seed)
    mask = rng.random(len(frame)) < test_fraction
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
