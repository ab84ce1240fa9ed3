"""Dynamic micro-batching: concurrent requests to one model version share one model call.

Requests queue up; a worker takes what is waiting (up to ``max_rows`` rows, waiting at most
``max_wait`` seconds for more once the first arrives), builds one column-wise frame, calls the model
once in a worker thread, and hands each request its slice of the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Predict = Callable[[dict[str, list[Any]]], np.ndarray]


@dataclass
class _Pending:
    rows: list[dict[str, Any]]
    future: asyncio.Future[list[float]] = field(repr=False)


class MicroBatcher:
    def __init__(
        self, predict: Predict, columns: list[str], max_rows: int = 64, max_wait: float = 0.002
    ) -> None:
        self.predict, self.columns = predict, columns
        self.max_rows, self.max_wait = max_rows, max_wait
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.batches = 0

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def submit(self, rows: list[dict[str, Any]]) -> list[float]:
        """The model's scores for ``rows`` (computed together with whatever else is waiting)."""
        self.start()
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(rows, future))
        return await future

    async def _collect(self) -> list[_Pending]:
        batch = [await self.queue.get()]
        size = len(batch[0].rows)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_rows:
            try:
                item = self.queue.get_nowait()  # what waits already: no timer for it
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await self.queue.get()
                except TimeoutError:
                    break
            batch.append(item)
            size += len(item.rows)
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            rows = [row for pending in batch for row in pending.rows]
            frame = {column: [row[column] for row in rows] for column in self.columns}
            try:
                scores = await asyncio.to_thread(self.predict, frame)
            except Exception as exc:  # the model failed: every waiting request gets the error
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            self.batches += 1
            start = 0
            for pending in batch:
                end = start + len(pending.rows)
                if not pending.future.done():
                    pending.future.set_result([float(s) for s in scores[start:end]])
                start = end
