"""Reading a gate or drift decision run back from the tracking server (for evidence packs)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from govdeploy.backends.registry import client, registry_call


def read_decision_run(
    run_id: str, tracking_uri: str, report_path: str = "governance/gate_report.json"
) -> dict[str, Any]:
    """The run's tags, metrics, times and status, and its JSON report file (None if it has none)."""
    server = client(tracking_uri)
    with registry_call(f"read decision run {run_id}", tracking_uri):
        run = server.get_run(run_id)
        report: Any = None
        with tempfile.TemporaryDirectory(prefix="govdeploy-run-") as workdir:
            try:
                path = Path(server.download_artifacts(run_id, report_path, workdir))
                report = json.loads(path.read_text(encoding="utf-8"))
            except Exception:  # no such artifact: the run is still evidence, without its report
                report = None
    return {
        "run_id": run_id,
        "status": run.info.status,
        "start_time_ms": run.info.start_time,
        "end_time_ms": run.info.end_time,
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "metrics": dict(run.data.metrics),
        "report": report,
    }
