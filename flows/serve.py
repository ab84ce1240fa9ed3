"""Serve the project's deployments: flows started from the Prefect UI run in this process."""

from __future__ import annotations

from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.canary import canary
from flows.release import release
from flows.rollback import rollback
from flows.train import train


def main() -> None:
    deployments = [
        canary.to_deployment(
            name="canary",
            description="Canary a promoted challenger through the gateway.",
            parameters={"model": "credit-risk"},
        ),
        rollback.to_deployment(
            name="rollback",
            description="Return serving to the previous verified champion.",
            parameters={"model": "credit-risk"},
        ),
        train.to_deployment(name="train", description="Train and register a candidate."),
        release.to_deployment(
            name="release",
            description="Gate a candidate version (validation, evaluation, policy).",
            parameters={"model": "credit-risk"},
        ),
    ]
    serve(*[cast(RunnerDeployment, d) for d in deployments], query_seconds=2)


if __name__ == "__main__":
    main()
