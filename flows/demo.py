"""The end-to-end demo scenario on the local stack.

A fair candidate passes every gate; a candidate trained on historically biased labels is
rejected by the fairness gate; corrupted evaluation data is rejected by data validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from flows.release import release
from flows.train import train
from govdeploy.data import generate_credit_data
from govdeploy.errors import GateError, PolicyGateError, ValidationGateError
from govdeploy.settings import Settings
from govdeploy.stack.manager import up

MODEL = "credit-risk"


@dataclass
class Outcome:
    step: str
    expected: str
    got: str
    detail: str

    @property
    def as_expected(self) -> bool:
        return self.expected == self.got


def corrupted_evaluation_data(settings: Settings) -> str:
    """Evaluation data with missing values and out-of-range incomes (a broken upstream feed)."""
    frame = generate_credit_data(1500, seed=99)
    frame.loc[frame.index[:40], "income"] = -1.0
    frame.loc[frame.index[40:80], "region"] = None
    path = settings.state_dir / "demo" / "corrupted-evaluation.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return str(path)


def _release_outcome(step: str, expected: str, version: str, data_path: str | None = None) -> Outcome:
    try:
        result = release(model=MODEL, version=version, data_path=data_path)
    except ValidationGateError as exc:
        return Outcome(step, expected, "rejected: data validation", str(exc))
    except PolicyGateError as exc:
        return Outcome(step, expected, "rejected: policy gate", str(exc))
    except GateError as exc:
        return Outcome(step, expected, "rejected", str(exc))
    return Outcome(step, expected, "passed", result["summary"])


def run_demo(settings: Settings, progress: Callable[[str], None], console: Console) -> bool:
    """Run the scenario; print what happened and where to look; True if all went as expected."""
    progress("starting the local stack")
    up(settings, progress)
    progress("training a fair candidate")
    fair = train(model=MODEL, rows=5000, seed=7)
    progress("training a candidate on historically biased labels")
    biased = train(model=MODEL, rows=5000, seed=8, label_bias=0.8)
    outcomes = [
        Outcome("train fair candidate", "registered", "registered", f"version {fair['version']}"),
        Outcome("train biased candidate", "registered", "registered", f"version {biased['version']}"),
    ]
    progress(f"release gates for fair v{fair['version']}")
    outcomes.append(_release_outcome(f"release v{fair['version']}", "passed", fair["version"]))
    progress(f"release gates for biased v{biased['version']}")
    outcomes.append(
        _release_outcome(f"release v{biased['version']}", "rejected: policy gate", biased["version"])
    )
    progress("release gates on corrupted evaluation data")
    outcomes.append(
        _release_outcome(
            f"release v{fair['version']} on corrupted data",
            "rejected: data validation",
            fair["version"],
            corrupted_evaluation_data(settings),
        )
    )
    _report(outcomes, settings, console)
    return all(o.as_expected for o in outcomes)


def _report(outcomes: list[Outcome], settings: Settings, console: Console) -> None:
    console.rule("govdeploy demo — what happened")
    for o in outcomes:
        verdict = "[green]✔[/green]" if o.as_expected else "[red]✘[/red]"
        surprise = "" if o.as_expected else f" [red](expected {o.expected})[/red]"
        console.print(f"{verdict} [bold]{o.step}[/bold] → {o.got}{surprise}")
        console.print(f"    {o.detail}", style="dim", highlight=False)
    console.rule("where to look")
    console.print(
        f"Prefect UI   {settings.prefect_ui_url}/runs  — flow runs; gate tables under Artifacts\n"
        f"MLflow UI    {settings.mlflow_url}/#/models/{MODEL}  — versions, governance tags, gate runs\n"
        f"S3 endpoint  {settings.s3_url}  — bucket {settings.bucket} (versioned, object-locked)\n"
        f"logs         {settings.state_dir / 'logs'}\n"
        "The stack keeps running for the UIs; stop it with 'make down'.",
        highlight=False,
    )
