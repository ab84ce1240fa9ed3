"""Complete I/O windows: every batch of a writer there once, every record once.

A gateway numbers its batches per writer; the drift window lists the batches of its days and refuses
a gap in a writer's run, a batch there twice, and a record id sealed twice, naming them: rows must
neither go missing nor count twice, or the drift decision could be steered by whoever can delete or
copy objects in the bucket.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from itertools import pairwise

import pyarrow as pa
import pyarrow.compute as pc

from govdeploy.errors import DataError
from govdeploy.monitoring.iorecords import BatchId

INCOMPLETE = "the window is incomplete, so no drift decision is taken"
SHOWN = 5  # findings named in one message
BATCH = "__batch"  # column of a row's batch: its index in the keys read


def writer_runs(
    batches: Sequence[BatchId], listed_from: date, names: Mapping[str, str] | None = None
) -> dict[str, tuple[int, int]]:
    """Each writer's first and last sequence among ``batches``, every batch written from the start of
    ``listed_from`` on; DataError naming each batch missing from a run, or there twice (by ``names``
    of the bucket keys, e.g. where they were read, or by the keys)."""
    by_writer: dict[str, list[BatchId]] = defaultdict(list)
    for batch in batches:
        by_writer[batch.writer].append(batch)
    problems: list[str] = []
    for writer, run in sorted(by_writer.items()):
        run.sort(key=lambda batch: batch.sequence)
        problems += _run_problems(writer, run, f"{listed_from:%Y%m%d}", names or {})
    if problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise DataError(
            f"I/O log batches are missing or repeated: {'; '.join(problems[:SHOWN])}{more}; "
            f"{INCOMPLETE} (a batch was deleted, or a gateway could not ship it: see its log): restore "
            "the batch from the bucket's versions or from the gateway's <state>/iolog/<day>/<name> to "
            "iolog/<day>/<name>, or move the window"
        )
    return {writer: (run[0].sequence, run[-1].sequence) for writer, run in by_writer.items()}


def _run_problems(
    writer: str, run: Sequence[BatchId], listed_from: str, names: Mapping[str, str]
) -> list[str]:
    """The batches missing from one writer's run (sorted by sequence), or there twice."""
    first, problems = run[0], []
    name = {batch.key: names.get(batch.key, batch.key) for batch in run}
    if first.previous_day is not None and first.previous_day >= listed_from:
        problems.append(
            f"batch {first.sequence - 1} of writer {writer} is missing (written on {first.previous_day}, "
            f"before {name[first.key]})"
        )
    for before, after in pairwise(run):
        if after.sequence == before.sequence:
            twice = f"{name[before.key]}, {name[after.key]}"
            problems.append(f"batch {after.sequence} of writer {writer} is there twice ({twice})")
        elif after.sequence > before.sequence + 1:
            low, high = before.sequence + 1, after.sequence - 1
            span = (
                f"batch {low} of writer {writer} is"
                if low == high
                else f"batches {low} to {high} of writer {writer} are"
            )
            problems.append(f"{span} missing (between {name[before.key]} and {name[after.key]})")
    return problems


def refuse_repeated_records(table: pa.Table, batches: Sequence[str] | None = None) -> None:
    """DataError naming the record ids in ``table`` more than once, and (with ``batches``, the name
    of each index of its ``__batch`` column) the batches that hold them."""
    if len(pc.unique(table["id"])) == table.num_rows:  # the usual case, and the cheapest check
        return
    counts = pc.value_counts(table["id"])
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    shown = repeated.slice(0, SHOWN)
    found: dict[str, list[str]] = defaultdict(list)
    if batches is not None:
        rows = table.filter(pc.is_in(table["id"], value_set=shown))
        for rid, index in zip(rows["id"].to_pylist(), rows[BATCH].to_pylist(), strict=True):
            found[rid].append(batches[index])
    named = [f"{rid} ({', '.join(found[rid])})" if found[rid] else str(rid) for rid in shown.to_pylist()]
    raise DataError(
        f"the I/O log holds {len(repeated)} record ids more than once: {'; '.join(named)}; their rows "
        "would count twice, so no drift decision is taken: find which writer sealed them again (the "
        "batches are named) and move the window past them"
    )
