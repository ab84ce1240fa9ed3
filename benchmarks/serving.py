"""Serving benchmark: the governed gateway against Seldon MLServer and `mlflow models serve`.

Needs the local stack with a promoted champion (`make demo` leaves one) and wrk (`apt-get update &&
apt-get install -y wrk` on Debian). The peers serve the champion's verified model files, one after
the other, each alone on a free port:

- `mlflow models serve` (1 worker) on the verified model directory;
- Seldon MLServer 1.7 with adaptive batching (32 rows, 3 ms), 1 and 2 inference workers, in its own
  virtual environment (benchmarks/mlserver.py; created under <state>/bench/ on the first run);
- the gateway with every control on (API keys, rate limits, encrypted I/O log, metrics, canary
  routing, alerts) in --gateway-workers processes (default: every core).

Each is loaded with wrk (2 threads, 32 connections, one row per request); the script prints
requests/s, p50/p99, errors and the CPU milliseconds the peer's processes spent per request, the
ratios gateway / MLServer (its best) and gateway / mlflow, and the gateway's I/O records (read
back after SIGTERM) against the prediction responses its /metrics counted. Another job on the
machine makes the figures noisy: --rounds N runs every peer N times, interleaved, and reports the
median round of each.

    .venv/bin/python benchmarks/serving.py [--seconds 20] [--connections 32] [--rounds 3]
        [--gateway-workers N] [--no-mlflow]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: `benchmarks` imports

from benchmarks import mlserver
from benchmarks.load import Load, check_wrk, free_port, server, stop, wrk
from govdeploy.backends import registry
from govdeploy.backends.model_files import load_sklearn_model
from govdeploy.config.settings import Settings, get_settings
from govdeploy.monitoring.iorecords import read_batches
from govdeploy.polling import poll
from govdeploy.stack.components import client_env
from govdeploy.trust.keys import master_key
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import verified_directory

ROW = {
    "income": 52000.0,
    "loan_amount": 9000.0,
    "loan_term_months": 36,
    "credit_history_years": 4.5,
    "num_late_payments": 1,
    "debt_to_income": 0.31,
    "employment_type": "salaried",
    "purpose": "car",
    "region": "north",
}
MODEL = "credit-risk"
GATEWAY = "govdeploy gateway"


@dataclass
class Bench:
    settings: Settings
    args: argparse.Namespace
    work: Path
    env: dict[str, str]
    model: Any = None  # the champion's fitted pipeline, for MLServer
    results: dict[str, list[Load]] = field(default_factory=dict)
    records: list[tuple[int, float]] = field(default_factory=list)  # (I/O records, responses counted)
    answers: dict[str, float] = field(default_factory=dict)  # each peer's score of ROW

    def load(self, name: str, group: int, url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        result = wrk(group, url, body, headers, self.args.seconds, self.args.connections)
        self.results.setdefault(name, []).append(result)
        print(f"  {name}: {result.rps:.0f} req/s, p99 {result.p99:.0f} ms", flush=True)


def mlflow_peer(bench: Bench) -> None:
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(bench.work / "model")]
    command += ["-h", "127.0.0.1", "-p", str(port), "--env-manager", "local"]
    with server(command, bench.env, f"http://127.0.0.1:{port}/ping", bench.work / "mlflow.log") as proc:
        url = f"http://127.0.0.1:{port}/invocations"
        answer = httpx.post(url, json={"dataframe_records": [ROW]}, timeout=30).json()
        bench.answers["mlflow models serve (a class, it serves predict)"] = float(answer["predictions"][0])
        bench.load("mlflow models serve", proc.pid, url, {"dataframe_records": [ROW]}, {})


def mlserver_peer(bench: Bench, workers: int) -> None:
    program = mlserver.environment(bench.settings.state_dir / "bench" / "mlserver-venv")
    ports = (free_port(), free_port(), free_port())
    repository = mlserver.model_repository(
        bench.work / f"mlserver-{workers}", bench.model, MODEL, ports, workers
    )
    base = f"http://127.0.0.1:{ports[0]}"
    command = [str(program), "start", str(repository)]
    name = f"MLServer, batching, {workers} worker{'s' if workers > 1 else ''}"
    log = bench.work / f"mlserver-{workers}.log"
    with server(command, bench.env, f"{base}/v2/models/{MODEL}/ready", log) as proc:
        url, body = f"{base}/v2/models/{MODEL}/infer", mlserver.v2_request(ROW)
        bench.answers[name] = mlserver.probability(httpx.post(url, json=body, timeout=30).json())
        bench.load(name, proc.pid, url, body, {})


def gateway_peer(bench: Bench) -> None:
    settings, port = bench.settings, free_port()
    state = bench.work / f"gateway-{time.monotonic_ns()}"
    shutil.copytree(settings.keys_dir, state / "keys")
    env = {**bench.env, "GOVDEPLOY_STATE_DIR": str(state), "GOVDEPLOY_GATEWAY_PORT": str(port)}
    env["GOVDEPLOY_GATEWAY_WORKERS"] = str(bench.args.gateway_workers)
    command = [sys.executable, "-m", "govdeploy.serving.gateway.run", "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    auditor = {"X-API-Key": (settings.keys_dir / "api" / "auditor.key").read_text()}
    with server(command, env, f"{base}/healthz", bench.work / "gateway.log") as proc:
        _every_worker_ready(base, bench.args.gateway_workers, auditor)
        url = f"{base}/v1/models/{MODEL}/predict"
        headers = {"X-API-Key": (settings.keys_dir / "api" / "bench.key").read_text()}
        answer = httpx.post(url, json={"inputs": ROW}, headers=headers, timeout=30)
        if answer.status_code != 200:
            log = (bench.work / "gateway.log").read_text()[-2000:]
            raise SystemExit(f"the gateway answered {answer.status_code}: {answer.text}\n{log}")
        bench.answers[GATEWAY] = answer.json()["predictions"][0]
        bench.load(GATEWAY, proc.pid, url, {"inputs": ROW}, headers)
        time.sleep(1)  # responses wrk stopped waiting for are still answered (and counted)
        answered = _predictions_counted(httpx.get(f"{base}/metrics", headers=auditor).text)
        code = stop(proc)
    if code not in (0, -15):
        print(f"  the gateway exited with {code}; see {bench.work / 'gateway.log'}")
    records = [r for r in read_batches(state / "iolog", master_key(settings.keys_dir)) if r.kind == "predict"]
    bench.records.append((len(records), answered))


def _every_worker_ready(base: str, workers: int, headers: dict[str, str]) -> None:
    """Wait until every worker process answered /healthz (each on a new connection)."""
    seen: set[int] = set()

    def ready() -> bool:
        answer = httpx.get(f"{base}/healthz", headers={**headers, "Connection": "close"}, timeout=10)
        seen.add(answer.json()["worker"]["pid"])
        return len(seen) == workers

    if not poll(ready, timeout=120, interval=0.05):
        raise SystemExit(f"only {len(seen)} of {workers} gateway workers answered within 120 s")


def _predictions_counted(metrics: str) -> float:
    pattern = r"^govdeploy_requests_total\{[^}]*\} ([\d.e+]+)$"
    return sum(float(value) for value in re.findall(pattern, metrics, re.M))


def median(loads: list[Load]) -> Load:
    """The round of median throughput."""
    return sorted(loads, key=lambda load: load.rps)[(len(loads) - 1) // 2]


def report(bench: Bench) -> None:
    print(f"\n{'':34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU ms/req':>12}")
    chosen = {name: median(loads) for name, loads in bench.results.items()}
    for name, load in chosen.items():
        spread = "" if len(bench.results[name]) == 1 else f"  ({_spread(bench.results[name])})"
        print(
            f"{name:34}{load.rps:>9.0f}{load.p50:>9.1f}{load.p99:>9.1f}{load.errors:>8.0f}"
            f"{load.cpu_ms_per_request:>12.2f}{spread}"
        )
    ours = chosen[GATEWAY]
    peers = {name: load for name, load in chosen.items() if name.startswith("MLServer")}
    for name, peer in [*peers.items(), *((n, p) for n, p in chosen.items() if n.startswith("mlflow"))]:
        lower = "lower" if ours.p99 < peer.p99 else "HIGHER"
        ratio = ours.rps / peer.rps
        print(f"gateway / {name}: {ratio:.2f}x throughput, p99 {lower} ({ours.p99:.0f} vs {peer.p99:.0f} ms)")
    whole = all(records == answered for records, answered in bench.records)
    for records, answered in bench.records:
        verdict = "equal" if records == answered else "MISMATCH"
        print(f"gateway I/O records: {records}; prediction responses: {answered:.0f} ({verdict})")
    if peers:
        best = max(peers.values(), key=lambda load: load.rps)
        met = ours.rps >= 2 * best.rps and ours.p99 < best.p99 and whole
        goal = "goal (>= 2x MLServer's best with a lower p99, records == responses)"
        print(f"{goal}: {'met' if met else 'NOT met'}")
    scores = ", ".join(f"{name} {score:.6f}" for name, score in bench.answers.items())
    print(f"score of the same row: {scores}")


def _spread(loads: list[Load]) -> str:
    rates = [load.rps for load in loads]
    p99 = statistics.median(load.p99 for load in loads)
    return f"{min(rates):.0f}-{max(rates):.0f} req/s over {len(rates)} rounds, median p99 {p99:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gateway-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-mlflow", action="store_true", help="leave `mlflow models serve` out")
    args = parser.parse_args()
    check_wrk()
    settings = get_settings()
    os.environ.update(client_env(settings))  # the stack's URLs and credentials
    version = registry.alias_version(MODEL, registry.CHAMPION, settings.mlflow_url)
    if version is None:
        raise SystemExit(f"{MODEL} has no champion on {settings.mlflow_url}: run 'make demo' first")
    work = Path(tempfile.mkdtemp(prefix="govdeploy-bench-"))
    # `mlflow models serve` execs `uvicorn` from PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    bench = Bench(
        settings, args, work, {**os.environ, "MLFLOW_TRACKING_URI": settings.mlflow_url, "PATH": path}
    )
    try:
        roots = load_roots(settings)
        with verified_directory(
            MODEL, version, roots=roots, level="release", tracking_uri=settings.mlflow_url
        ) as (
            directory,
            _,
        ):
            shutil.copytree(directory, work / "model")
            bench.model = load_sklearn_model(directory, f"{MODEL} v{version}").model
        mlserver.environment(settings.state_dir / "bench" / "mlserver-venv")  # before the clock
        print(
            f"model {MODEL} v{version}; wrk -t2 -c{args.connections} -d{args.seconds}s, one row per request; "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the first run",
            flush=True,
        )
        peers: list[Callable[[Bench], None]] = [] if args.no_mlflow else [mlflow_peer]
        peers += [lambda b: mlserver_peer(b, 1), lambda b: mlserver_peer(b, 2), gateway_peer]
        for round_ in range(args.rounds):
            for peer in peers[round_ % len(peers) :] + peers[: round_ % len(peers)]:
                peer(bench)
        report(bench)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
