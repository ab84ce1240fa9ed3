"""Serving benchmark: the governed gateway against `mlflow models serve`, side by side.

Needs the local stack with a promoted champion (`make demo` leaves one). Starts, on free ports,
`mlflow models serve` (1 worker) on the champion's verified model files and a dedicated gateway with
every control on (API key auth, rate limits, I/O logging, metrics, canary routing), loads each with
wrk (32 connections, one row per request) and prints requests/s, p50/p99, the ratio, and the
gateway's I/O records against its responses.

    .venv/bin/python benchmarks/serving.py [--seconds 20] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from govdeploy.backends import registry
from govdeploy.config.settings import get_settings
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


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(url: str, timeout: float = 120) -> None:
    if not poll(lambda: _answers(url), timeout=timeout):
        raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def wrk(
    url: str, body: dict[str, object], headers: dict[str, str], seconds: int, connections: int
) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    lines += [
        f'wrk.headers["{k}"] = "{v}"' for k, v in {"Content-Type": "application/json", **headers}.items()
    ]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(_find(r"Requests/sec:\s+([\d.]+)", out)),
        "p50": _ms(_find(r"50%\s+([\d.]+\w+)", out)),
        "p99": _ms(_find(r"99%\s+([\d.]+\w+)", out)),
        "requests": float(_find(r"(\d+) requests in", out)),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"wrk output lacks {pattern!r}:\n{text}")
    return match.group(1)


def _ms(value: str) -> float:
    number, unit = float(_find(r"([\d.]+)", value)), re.sub(r"[\d.]+", "", value)
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    settings = get_settings()
    os.environ.update(client_env(settings))  # the stack's URLs and credentials
    version = registry.alias_version(MODEL, registry.CHAMPION, settings.mlflow_url)
    if version is None:
        raise SystemExit(f"{MODEL} has no champion on {settings.mlflow_url}: run 'make demo' first")
    work = Path(tempfile.mkdtemp(prefix="govdeploy-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with verified_directory(
            MODEL,
            version,
            roots=load_roots(settings),
            level="release",
            tracking_uri=settings.mlflow_url,
        ) as (directory, _):
            shutil.copytree(directory, work / "model")
        peer_port, gateway_port = free_port(), free_port()
        # `mlflow models serve` execs `uvicorn` from PATH
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": settings.mlflow_url, "PATH": path}
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "models",
                    "serve",
                    "-m",
                    str(work / "model"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(peer_port),
                    "--env-manager",
                    "local",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        state = work / "state"
        shutil.copytree(settings.keys_dir, state / "keys")
        gateway_env = {**env, "GOVDEPLOY_STATE_DIR": str(state), "GOVDEPLOY_GATEWAY_PORT": str(gateway_port)}
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "govdeploy.serving.gateway.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(gateway_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=gateway_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(gateway)
        wait_for(f"http://127.0.0.1:{peer_port}/ping")
        wait_for(f"http://127.0.0.1:{gateway_port}/healthz")
        print(
            f"model {MODEL} v{version}; wrk -t2 -c{args.connections} -d{args.seconds}s, one row per request"
        )
        peer = wrk(
            f"http://127.0.0.1:{peer_port}/invocations",
            {"dataframe_records": [ROW]},
            {},
            args.seconds,
            args.connections,
        )
        key = (settings.keys_dir / "api" / "bench.key").read_text()
        ours = wrk(
            f"http://127.0.0.1:{gateway_port}/v1/models/{MODEL}/predict",
            {"inputs": ROW},
            {"X-API-Key": key},
            args.seconds,
            args.connections,
        )
        metrics = httpx.get(
            f"http://127.0.0.1:{gateway_port}/metrics",
            headers={"X-API-Key": (settings.keys_dir / "api" / "auditor.key").read_text()},
        ).text
        answered = sum(
            float(m) for m in re.findall(r"^govdeploy_requests_total\{[^}]*\} ([\d.e+]+)$", metrics, re.M)
        )
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        records = [
            r for r in read_batches(state / "iolog", master_key(settings.keys_dir)) if r.kind == "predict"
        ]
        print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
        for name, result in (("mlflow models serve", peer), ("govdeploy gateway", ours)):
            print(
                f"{name:24}{result['rps']:>10.1f}{result['p50']:>10.1f}{result['p99']:>10.1f}{result['errors']:>8.0f}"
            )
        lower = "lower" if ours["p99"] < peer["p99"] else "HIGHER"
        print(
            f"throughput ratio (gateway / peer): {ours['rps'] / peer['rps']:.1f}x; "
            f"p99 {lower} ({ours['p99']:.0f} vs {peer['p99']:.0f} ms)"
        )
        print(
            f"gateway I/O records written: {len(records)}; prediction responses: {answered:.0f} "
            f"({'equal' if len(records) == answered else 'MISMATCH'}); wrk counted {ours['requests']:.0f}"
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
