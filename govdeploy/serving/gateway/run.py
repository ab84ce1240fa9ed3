"""Run the gateway: ``python -m govdeploy.serving.gateway.run [--host H] [--port P] [--log-level L]``
(``govdeploy up``, ``govdeploy gateway``, the container image and the manifests run it so).

With ``GOVDEPLOY_GATEWAY_WORKERS`` at 1, one uvicorn process. Above 1, uvicorn's supervisor and that
many worker processes sharing the listening socket, each running the app's lifespan (its own
gateway: ``govdeploy.serving.gateway.workers``). This process first makes the run directory the
workers share and sets ``PROMETHEUS_MULTIPROC_DIR`` for them; on SIGTERM it stops every worker
safely (each flushes its I/O records) and waits for them, then removes the run directory.

Either way with the HTTP protocol that closes slow-header connections
(``govdeploy.serving.gateway.server:HeaderDeadline``) and the settings' keep-alive time.
"""

from __future__ import annotations

import argparse
import os
import shutil

import uvicorn

from govdeploy.config.settings import get_settings
from govdeploy.serving.gateway.workers import MULTIPROC_ENV, prepare_run

APP = "govdeploy.serving.gateway.main:app"
PROTOCOL = "govdeploy.serving.gateway.server:HeaderDeadline"
# a worker that does not answer uvicorn's health ping this long is killed (and restarted): long
# enough that a busy worker is never killed with I/O records still queued
WORKER_HEALTHCHECK_SECONDS = 30


def parser() -> argparse.ArgumentParser:
    """The launcher's arguments (the container image and the manifests pass them too)."""
    parser = argparse.ArgumentParser(description="Run the govdeploy serving gateway.")
    parser.add_argument(
        "--host", help="address to listen on (default GOVDEPLOY_HOST; 0.0.0.0 in a container)"
    )
    parser.add_argument("--port", type=int, help="port (default GOVDEPLOY_GATEWAY_PORT)")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = get_settings()
    workers = settings.gateway_workers
    run = prepare_run(settings, os.getpid()) if workers > 1 else None
    if run is not None:
        os.environ[MULTIPROC_ENV] = str(run / "metrics")  # inherited by every worker
    try:
        uvicorn.run(
            APP,
            host=args.host or settings.host,
            port=args.port or settings.gateway_port,
            workers=workers,
            log_level=args.log_level,
            access_log=False,
            http=PROTOCOL,
            timeout_keep_alive=settings.keep_alive_seconds,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
    finally:
        if run is not None:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
