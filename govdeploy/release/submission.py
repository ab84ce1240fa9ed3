"""What a submitter signs for a training run: the model and the run's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from govdeploy.trust.keys import load_ed25519_private
from govdeploy.trust.submissions import make_submission, sign_submission


def submission_parameters(
    rows: int = 5000,
    seed: int = 7,
    label_bias: float = 0.0,
    shift: float = 0.0,
    positive_weight: float = 1.0,
    data_path: str | None = None,
) -> dict[str, Any]:
    """The training parameters a submission is bound to (a signed submission replays only this run);
    the defaults are the train flow's."""
    return {
        "rows": rows,
        "seed": seed,
        "label_bias": float(label_bias),
        "shift": float(shift),
        "positive_weight": float(positive_weight),
        "data_path": data_path,
    }


def submission_token(
    model: str, parameters: dict[str, Any], person: str, key: Path, valid_minutes: int
) -> str:
    """A submission for one training run, signed with ``person``'s private key file."""
    statement = make_submission(model, parameters, person, valid_minutes)
    return sign_submission(statement, load_ed25519_private(key, f"private key of {person}"))
