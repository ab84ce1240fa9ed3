"""Serve the project's deployments: flows started from the Prefect UI run in this process."""

from __future__ import annotations

from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.release import release
from flows.train import train


def main() -> None:
    deployments = [
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
