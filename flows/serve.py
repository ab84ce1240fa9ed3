"""Serve the project's deployments: flows started from the Prefect UI run in this process."""

from __future__ import annotations

from prefect import serve

from flows.release import release
from flows.train import train


def main() -> None:
    serve(
        train.to_deployment(name="train", description="Train and register a candidate."),
        release.to_deployment(
            name="release",
            description="Gate a candidate version (validation, evaluation, policy).",
            parameters={"model": "credit-risk"},
        ),
        query_seconds=2,
    )


if __name__ == "__main__":
    main()
