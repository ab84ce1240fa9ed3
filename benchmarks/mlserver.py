"""Seldon MLServer as a peer of the serving benchmark: its own virtual environment, the champion's
model, adaptive batching.

The environment (``<state>/bench/mlserver-venv``, reused while its requirements stay the same)
holds MLServer 1.7 with its scikit-learn runtime, ``httptools`` (MLServer does not install it, and
without it uvicorn parses HTTP in pure Python), ``uvloop<0.22`` (its workers crash with 0.23: "There
is no current event loop") and this environment's scikit-learn, pandas and numpy versions, so that
the pipeline loads as it was fitted. The model is the champion as the gateway serves it (verified,
loaded from its skops file), dumped with joblib for ``mlserver_sklearn.SKLearnModel``; it answers
``predict_proba``, and requests are V2 with ``content_type: pd`` so that the pipeline's
ColumnTransformer gets named columns.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

BATCH = {"max_batch_size": 32, "max_batch_time": 0.003}  # adaptive batching: up to 32 rows, 3 ms
_TYPES = {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES"}


def requirements() -> list[str]:
    """What the MLServer environment installs (the model's libraries at this environment's versions)."""
    pinned = [f"{name}=={version(name)}" for name in ("scikit-learn", "pandas", "numpy", "joblib")]
    return ["mlserver>=1.7,<1.8", "mlserver-sklearn>=1.7,<1.8", "uvloop<0.22", "httptools", *pinned]


def environment(directory: Path) -> Path:
    """The MLServer environment in ``directory`` (created, or reused when it has these requirements);
    the path of its ``mlserver`` program."""
    wanted = "\n".join(requirements())
    stamp = directory / "govdeploy-requirements.txt"
    program = directory / "bin" / "mlserver"
    if program.exists() and stamp.exists() and stamp.read_text() == wanted:
        return program
    print(f"creating the MLServer environment in {directory} (a few minutes, once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(directory)], check=True)
    pip = [
        str(directory / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    for arguments in (["--upgrade", "pip"], requirements()):
        done = subprocess.run([*pip, *arguments], capture_output=True, text=True)
        if done.returncode != 0:  # pip's output only then (this machine's index settings are noisy)
            raise SystemExit(
                f"pip install {' '.join(arguments)} failed in {directory}:\n{done.stderr[-3000:]}"
            )
    stamp.write_text(wanted)
    return program


def model_repository(
    directory: Path, model: Any, name: str, ports: tuple[int, int, int], workers: int
) -> Path:
    """A model repository serving ``model`` (a fitted pipeline) as ``name`` with adaptive batching and
    ``workers`` inference processes, listening on the ``ports`` (HTTP, gRPC, metrics)."""
    import joblib

    http, grpc, metrics = ports
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    settings = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "parallel_workers": workers,
        "debug": False,
    }
    (directory / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        **BATCH,
        "parameters": {"uri": "./model.joblib", "extra": {"predict_fn": "predict_proba"}},
    }
    (folder / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    return directory


def v2_request(row: dict[str, Any]) -> dict[str, Any]:
    """A V2 inference request of one row, one named input per column, read as a pandas frame."""
    inputs = [
        {"name": column, "shape": [1], "datatype": _TYPES[type(value)], "data": [value]}
        for column, value in row.items()
    ]
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


def probability(answer: dict[str, Any]) -> float:
    """The positive class's probability in MLServer's answer to one row."""
    output = answer["outputs"][0]
    data = output["data"]
    return float(data[-1] if output["shape"][-1] == 2 else data[0])
