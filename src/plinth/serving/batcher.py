"""Adaptive micro-batching: requests for one model version share a predict call under load.

Requests queue per model version; one worker takes everything queued (whole requests, up to
``max_rows`` rows: rows count, not requests) and runs it as one batch. It waits for more only
while other requests are already inside the server (being read or checked) and the oldest
queued one has waited less than ``max_wait`` — so a lone request is never held back, and no
request waits longer than ``max_wait`` for company. That bounds the added latency: p99 stays
within the unbatched p99 plus ``max_wait``. Under load, requests that arrive while a batch
computes queue up and form the next batch without any waiting.

A fast model's batches run inline on the event loop (a thread hop costs more than they do);
a model whose single-row prediction took longer than ``offload_after`` at warm-up runs its
batches on a worker thread, so the loop keeps accepting requests while it computes (LightGBM,
ONNX Runtime and torch release the GIL). The choice is made once, at load: deciding per batch
from measured times would let a stall caused by something else flip it back and forth.

When more than ``max_queue_rows`` rows wait, a request is refused at once with
:class:`Overloaded` (HTTP 503 with Retry-After) rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plinth.errors import PlinthError
from plinth.serving.inputs import Columns


class Overloaded(PlinthError):
    """More rows wait than the queue holds; the client should retry after a pause."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


@dataclass
class Job:
    """One request's rows on their way through a batch."""

    columns: Columns
    n: int
    now: datetime | None = None
    arrival: float = field(default_factory=time.perf_counter)
    future: asyncio.Future[Any] | None = None


class Inflight:
    """How many requests are inside the server now (entered, not yet answered).

    Example:
        >>> count = Inflight(); count.value += 1; count.value
        1
    """

    def __init__(self) -> None:
        self.value = 0


@dataclass
class BatchStats:
    """Running figures of a batcher, for the metrics endpoint."""

    batches: int = 0
    rows: int = 0
    last_batch_rows: int = 0


class Batcher:
    """Queue jobs for one model version and run them in adaptive micro-batches.

    ``run(jobs)`` gets the jobs of one batch and returns one result per job.

    Example:
        >>> # batcher = Batcher(run, max_rows=64, max_wait_s=0.002)
        >>> # result = await batcher.submit(Job(columns, n))
    """

    def __init__(
        self,
        run: Callable[[Sequence[Job]], list[Any]],
        *,
        max_rows: int = 64,
        max_wait_s: float = 0.002,
        max_queue_rows: int = 4096,
        offload_after_s: float = 0.001,
        inflight: Inflight | None = None,
    ) -> None:
        self.run = run
        self.max_rows = max(1, int(max_rows))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.max_queue_rows = max(1, int(max_queue_rows))
        self.offload_after_s = offload_after_s
        #: Run batches on a worker thread (set for models slower than ``offload_after_s``).
        self.offload = False
        self.stats = BatchStats()
        self._queue: deque[Job] = deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        #: Requests inside the server now (the app counts them); shared by its batchers.
        self.inflight = inflight if inflight is not None else Inflight()
        self._row_seconds = 0.0  # EWMA of predict seconds per row
        self._batch_seconds = 0.0  # EWMA of seconds per batch
        self._closing = False

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a batch."""
        return self._queued_rows

    async def submit(self, job: Job) -> Any:
        """Queue ``job`` and wait for its result; raise :class:`Overloaded` when full.

        Example:
            >>> # await batcher.submit(Job({"x": [1.0]}, 1))
        """
        if self._queued_rows + job.n > self.max_queue_rows and self._queued_rows > 0:
            wait = self._queued_rows * max(self._row_seconds, 1e-4)
            raise Overloaded(
                f"The model is overloaded: {self._queued_rows} rows are already waiting.",
                retry_after=max(1, math.ceil(wait)),
                hint="Retry after the pause in the Retry-After header, or add replicas.",
            )
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._work())
        job.future = loop.create_future()
        self._queue.append(job)
        self._queued_rows += job.n
        self._wakeup.set()  # type: ignore[union-attr]
        return await job.future

    def _take(self, batch: list[Job], rows: int) -> int:
        while self._queue and (rows == 0 or rows + self._queue[0].n <= self.max_rows):
            job = self._queue.popleft()
            self._queued_rows -= job.n
            batch.append(job)
            rows += job.n
        return rows

    async def _work(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[Job] = []
            rows = self._take(batch, 0)
            deadline = batch[0].arrival + self.max_wait_s
            while rows < self.max_rows and not self._closing:
                left = deadline - time.perf_counter()
                # Wait only for requests already inside the server (being read or checked):
                # a client that sends one request at a time would otherwise pay the wait on
                # every request and never be batched with anyone.
                if left <= 0 or self.inflight.value <= len(batch):
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), left)
                except TimeoutError:
                    break
                rows = self._take(batch, rows)
            await self._execute(batch, rows)

    async def _execute(self, batch: list[Job], rows: int) -> None:
        timed: list[float] = []
        try:
            if self.offload:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="plinth-predict")
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._pool, self._timed, batch, timed)
            else:
                results = self._timed(batch, timed)
        except Exception as exc:
            if len(batch) > 1:
                # One bad request must not fail the others: run each alone.
                for job in batch:
                    await self._execute([job], job.n)
                return
            _settle(batch[0], error=exc)
            return
        elapsed = timed[0]  # the model's own time, without the hop to a thread
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * elapsed
        self._row_seconds = 0.8 * self._row_seconds + 0.2 * (elapsed / max(rows, 1))
        self.stats.batches += 1
        self.stats.rows += rows
        self.stats.last_batch_rows = rows
        for job, result in zip(batch, results, strict=True):
            _settle(job, result=result)

    def _timed(self, batch: list[Job], timed: list[float]) -> list[Any]:
        begin = time.perf_counter()
        results = self.run(batch)
        timed.append(time.perf_counter() - begin)
        return results

    async def close(self) -> None:
        """Finish every queued job, then stop the worker.

        Example:
            >>> # await batcher.close()
        """
        self._closing = True
        if self._worker is not None and self._wakeup is not None:
            self._wakeup.set()
            await self._worker
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _settle(job: Job, *, result: Any = None, error: BaseException | None = None) -> None:
    future = job.future
    if future is None or future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
