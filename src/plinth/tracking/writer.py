"""Metric points written in batches on a background thread, so logging never waits on the DB.

The training thread appends ``(step, time, key, value)`` (or ``(step, time, keys, values)``
with tuples for several metrics at once) to a deque: atomic, no lock. The writer thread drains
it every ``interval`` seconds and writes everything it took in one transaction: new series
rows, one packed chunk per series (see :mod:`plinth.tracking.points`) and the series
summaries. Packing keeps the writer's work per point, which competes with the training
thread for the interpreter, to a few list appends.

``flush`` puts a marker in the deque and waits until the writer has passed it, so a flush
covers exactly the points logged before it. When the deque holds ``max_buffered`` entries,
logging waits for a flush instead of growing without bound.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import insert, text

from plinth._core.clock import utcnow
from plinth.catalog.models import MetricChunk
from plinth.errors import CatalogError
from plinth.tracking.points import pack, summary

INTERVAL_S = 1.0
MAX_BUFFERED = 2_000_000
RETRIES = 5

_Point = tuple[int, int, Any, Any]
_STEP, _STAMP, _KEY, _VALUE = (itemgetter(i) for i in range(4))


class _Marker:
    """A flush request travelling through the queue behind the points it covers."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class MetricWriter:
    """Buffer a run's metric points and write them in batches off the calling thread.

    Example:
        >>> # writer = MetricWriter(ws.catalog, run_id)
        >>> # writer.queue.append((0, time_us, "loss", 0.5))   # (step, time, key, value)
        >>> # writer.close()   # flushes, then stops the thread
    """

    def __init__(
        self,
        catalog: Any,
        run_id: str,
        *,
        interval: float = INTERVAL_S,
        max_buffered: int = MAX_BUFFERED,
    ) -> None:
        self._catalog = catalog
        self._run_id = run_id
        self._interval = interval
        self.max_buffered = max_buffered
        #: Callers append ``(step, time_us, key, value)`` entries here (atomic, no lock) and
        #: call :meth:`flush` once it holds ``max_buffered`` of them.
        self.queue: deque[_Point | _Marker] = deque()
        self._series: dict[str, int] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._loop, name=f"plinth-metrics-{run_id}", daemon=True
        )
        self._thread.start()

    # -- the training thread's side ------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Write every point queued so far and wait until it is committed.

        Raises the writer's error, if writing failed, as a :class:`CatalogError`.
        """
        self._raise_error()
        if not self._thread.is_alive():
            self._write_all(self._take())  # the thread stopped; write on the caller's thread
            return
        marker = _Marker()
        self.queue.append(marker)
        self._wake.set()
        while not marker.done.wait(0.05 if timeout is None else timeout):
            if not self._thread.is_alive() or timeout is not None:
                break
        self._raise_error()
        if not marker.done.is_set():
            # The thread died or the wait timed out: write what is left here rather than lose it.
            self._write_all(self._take())

    def close(self) -> None:
        """Flush, then stop the writer thread."""
        try:
            self.flush()
        finally:
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout=30)

    # -- the writer thread ---------------------------------------------------------------

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise CatalogError(
                f"Metrics of run '{self._run_id}' could not be written: {error}.",
                hint="Check that the catalog database is reachable and writable; the points "
                "stay queued and are written on the next flush.",
            ) from error

    def _take(self) -> list[_Point | _Marker]:
        queue = self.queue
        count = len(queue)
        return [queue.popleft() for _ in range(count)]

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            items = self._take()
            if items:
                try:
                    self._write_all(items)
                except BaseException as exc:  # kept for the training thread to raise
                    self._error = exc
                    # Put the points back at the front so a later flush retries them.
                    self.queue.extendleft(reversed([i for i in items if type(i) is tuple]))
                    for item in items:
                        if type(item) is _Marker:
                            item.done.set()
            if self._stopping and not self.queue:
                return

    def _write_all(self, items: list[_Point | _Marker]) -> None:
        if _Marker not in set(map(type, items)):  # the usual batch: no flush request in it
            self._write(items)  # type: ignore[arg-type]
            return
        points: list[_Point] = []
        for item in items:
            if type(item) is _Marker:
                if points:
                    self._write(points)
                    points = []
                item.done.set()
            else:
                points.append(item)  # type: ignore[arg-type]
        if points:
            self._write(points)

    def _write(self, points: list[_Point]) -> None:
        for attempt in range(RETRIES):
            try:
                self._write_once(points)
                return
            except Exception as exc:
                if attempt == RETRIES - 1 or not _transient(exc):
                    raise
                time.sleep(0.1 * 2**attempt)

    def _write_once(self, points: list[_Point]) -> None:
        grouped = _group(points)
        engine = self._catalog.engine
        with engine.begin() as connection:
            ids = self._series_ids(connection, grouped)
            chunks = []
            summaries = []
            now = utcnow().replace(tzinfo=None)
            for key, (steps, values, times) in grouped.items():
                chunks.append({"metric_id": ids[key], **pack(steps, values, times)})
                summaries.append({**summary(steps, values), "id": ids[key], "now": now})
            connection.execute(insert(MetricChunk.__table__), chunks)
            connection.execute(
                text(
                    "UPDATE run_metrics SET "
                    "last = CASE WHEN :last_step >= last_step THEN :last ELSE last END, "
                    "last_step = CASE WHEN :last_step >= last_step THEN :last_step "
                    "ELSE last_step END, "
                    "min = CASE WHEN min IS NULL OR :min < min THEN :min ELSE min END, "
                    "max = CASE WHEN max IS NULL OR :max > max THEN :max ELSE max END, "
                    "count = count + :count, updated_at = :now WHERE id = :id"
                ),
                summaries,
            )
        self._series = ids  # only once committed: a rolled-back series row must be re-created

    def _series_ids(self, connection: Any, keys: Iterable[str]) -> dict[str, int]:
        missing = [key for key in keys if key not in self._series]
        if missing:
            now = utcnow().replace(tzinfo=None)
            for key in missing:
                connection.execute(
                    text(
                        "INSERT INTO run_metrics (run_id, key, last, last_step, min, max, count, "
                        "updated_at) VALUES (:run, :key, NULL, :first, NULL, NULL, 0, :now) "
                        "ON CONFLICT (run_id, key) DO NOTHING"
                    ),
                    {"run": self._run_id, "key": key, "now": now, "first": -(2**62)},
                )
            found = connection.execute(
                text("SELECT key, id FROM run_metrics WHERE run_id = :run"),
                {"run": self._run_id},
            )
            ids = dict(self._series)
            ids.update({key: int(metric_id) for key, metric_id in found})
            return ids
        return self._series


class _Series:
    """One key's points of a batch, in logging order: array parts plus pending scalars."""

    __slots__ = ("parts", "steps", "times", "values")

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.steps: list[int] = []
        self.values: list[Any] = []
        self.times: list[int] = []

    def _flush(self) -> None:
        if self.steps:
            self.parts.append(
                (
                    np.asarray(self.steps, dtype=np.int64),
                    np.asarray(self.values, dtype=np.float64),
                    np.asarray(self.times, dtype=np.int64),
                )
            )
            self.steps, self.values, self.times = [], [], []

    def add_part(self, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        self._flush()
        self.parts.append((steps, values, times))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._flush()
        if len(self.parts) == 1:
            return self.parts[0]
        return tuple(np.concatenate(column) for column in zip(*self.parts, strict=True))  # type: ignore[return-value]


def _group(points: list[_Point]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Split queued entries into per-key arrays of steps, values and times, in logging order.

    Consecutive multi-metric entries with the same keys (a training loop's usual pattern) are
    turned into one 2-D array in a single NumPy call, so the work per point stays in C.

    Example:
        >>> _group([(0, 10, ("a", "b"), (1.0, 2.0)), (1, 20, "a", 3.0)])["a"][1].tolist()
        [1.0, 3.0]
    """
    grouped: dict[str, _Series] = {}

    def series(key: str) -> _Series:
        found = grouped.get(key)
        if found is None:
            found = grouped[key] = _Series()
        return found

    # The loops over entries run in C (groupby, map, itemgetter): this thread competes with
    # the training loop for the interpreter, so its work per point must stay small.
    for key, run in groupby(points, _KEY):
        if type(key) is str:
            found = series(key)
            for step, stamp, _, value in run:
                found.steps.append(step)
                found.values.append(value)
                found.times.append(stamp)
            continue
        segment = list(run)
        count = len(segment)
        steps = np.fromiter(map(_STEP, segment), dtype=np.int64, count=count)
        stamps = np.fromiter(map(_STAMP, segment), dtype=np.int64, count=count)
        flat = chain.from_iterable(map(_VALUE, segment))
        matrix = np.fromiter(flat, dtype=np.float64, count=count * len(key)).reshape(count, -1)
        for column, name in enumerate(key):
            series(name).add_part(steps, matrix[:, column], stamps)
    return {key: found.arrays() for key, found in grouped.items()}


def _transient(exc: Exception) -> bool:
    message = str(exc).lower()
    return any(word in message for word in ("locked", "busy", "deadlock", "could not serialize"))
