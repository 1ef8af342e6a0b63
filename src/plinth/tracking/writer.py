"""Metric points written in batches on a background thread, so logging never waits on the DB.

A logging call packs its points into one ``bytes`` entry, ``<key set id, step, time_us,
values...>`` as little-endian int64s and float64s, and appends it to a deque: atomic, no lock.
The key sets (the names logged together) are registered once with :meth:`MetricWriter.key_set`.
The writer thread drains the deque every ``interval`` seconds and writes everything it took
in one transaction: new series rows, one packed chunk per series (see
:mod:`plinth.tracking.points`) and the series summaries.

Entries are bytes rather than tuples for the training thread's sake: bytes are not tracked by
the garbage collector, so a second of queued points does not set off collections in the
training loop, and the writer reads a batch as NumPy arrays instead of touching every value
from Python, where it would hold the interpreter lock the training thread is waiting for.

``flush`` puts a marker in the deque and waits until the writer has passed it, so a flush
covers exactly the points logged before it. When the deque holds ``max_buffered`` entries,
logging waits for a flush instead of growing without bound.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from sqlalchemy import insert, text

from plinth._core.clock import utcnow
from plinth.catalog.models import MetricChunk
from plinth.errors import CatalogError
from plinth.tracking.checks import MIN_STEP
from plinth.tracking.points import pack, summary

INTERVAL_S = 1.0
MAX_BUFFERED = 2_000_000
RETRIES = 5

_INT64 = np.dtype("<i8")


class _Marker:
    """A flush request travelling through the queue behind the points it covers."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class MetricWriter:
    """Buffer a run's metric points and write them in batches off the calling thread.

    Example:
        >>> # writer = MetricWriter(ws.catalog, run_id)
        >>> # writer.add("loss", step=0, time_us=time.time_ns() // 1000, value=0.5)
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
        #: Callers append entries packed by :meth:`key_set`'s packer here (atomic, no lock)
        #: and call :meth:`flush` once it holds ``max_buffered`` of them.
        self.queue: deque[bytes | _Marker] = deque()
        #: The names of each key set, by id, and the id of each key set.
        self.key_sets: list[tuple[str, ...]] = []
        self.key_set_ids: dict[tuple[str, ...], int] = {}
        self._packers: list[Callable[..., bytes]] = []
        self._registering = threading.Lock()
        self._series: dict[str, int] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._loop, name=f"plinth-metrics-{run_id}", daemon=True
        )
        self._thread.start()

    # -- the training thread's side ------------------------------------------------------

    def key_set(self, keys: tuple[str, ...]) -> tuple[int, Callable[..., bytes]]:
        """The id of a key set, registered on first use, and the function that packs its
        entries: ``packer(id, step, time_us, *values)``.

        Example:
            >>> # kid, packer = writer.key_set(("loss", "auc"))
            >>> # writer.queue.append(packer(kid, 3, time_us, 0.25, 0.71))
        """
        kid = self.key_set_ids.get(keys)
        if kid is None:
            with self._registering:
                kid = self.key_set_ids.get(keys)
                if kid is None:
                    kid = len(self.key_sets)
                    self._packers.append(struct.Struct(f"<3q{len(keys)}d").pack)
                    self.key_sets.append(keys)
                    # Last, so a reader without the lock that finds the id finds its packer.
                    self.key_set_ids[keys] = kid
        return kid, self._packers[kid]

    def add(self, key: str, step: int, time_us: int, value: float) -> None:
        """Queue one checked point (the server's way in; a run packs its own entries).

        Example:
            >>> # writer.add("loss", 0, time.time_ns() // 1000, 0.5)
        """
        kid, packer = self.key_set((key,))
        self.queue.append(packer(kid, step, time_us, value))

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

    def _take(self) -> list[bytes | _Marker]:
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
                    self.queue.extendleft(reversed([i for i in items if type(i) is bytes]))
                    for item in items:
                        if type(item) is _Marker:
                            item.done.set()
            if self._stopping and not self.queue:
                return

    def _write_all(self, items: list[bytes | _Marker]) -> None:
        if _Marker not in set(map(type, items)):  # the usual batch: no flush request in it
            self._write(items)  # type: ignore[arg-type]
            return
        points: list[bytes] = []
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

    def _write(self, points: list[bytes]) -> None:
        for attempt in range(RETRIES):
            try:
                self._write_once(points)
                return
            except Exception as exc:
                if attempt == RETRIES - 1 or not _transient(exc):
                    raise
                time.sleep(0.1 * 2**attempt)

    def _write_once(self, points: list[bytes]) -> None:
        grouped = _group(points, self.key_sets)
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
                    {"run": self._run_id, "key": key, "now": now, "first": MIN_STEP},
                )
            found = connection.execute(
                text("SELECT key, id FROM run_metrics WHERE run_id = :run"),
                {"run": self._run_id},
            )
            ids = dict(self._series)
            ids.update({key: int(metric_id) for key, metric_id in found})
            return ids
        return self._series


def _group(
    points: list[bytes], key_sets: list[tuple[str, ...]]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Split packed entries into per-key arrays of steps, values and times, in logging order.

    All entries are read as one buffer: entries of one width become the rows of one 2-D
    array, split by key set id with NumPy, so the work per point stays in C however the
    key sets interleave.

    Example:
        >>> two = struct.Struct("<3q2d").pack(0, 5, 10, 1.0, 2.0)
        >>> one = struct.Struct("<3qd").pack(1, 6, 20, 3.0)
        >>> _group([two, one], [("a", "b"), ("a",)])["a"][1].tolist()
        [1.0, 3.0]
    """
    buffer = np.frombuffer(b"".join(points), dtype=_INT64)
    widths = np.fromiter(map(len, points), dtype=np.int64, count=len(points)) // 8
    starts = np.cumsum(widths) - widths
    each_width = np.unique(widths).tolist()
    parts: dict[str, list[tuple[np.ndarray, ...]]] = {}
    for width in each_width:
        if len(each_width) == 1:  # the usual batch: one key set, or keys of one width
            positions = np.arange(len(points))
            rows = buffer.reshape(-1, width)
        else:
            positions = np.flatnonzero(widths == width)
            rows = buffer[starts[positions, None] + np.arange(width)]
        kids = rows[:, 0]
        each_kid = np.unique(kids).tolist()
        for kid in each_kid:
            if len(each_kid) == 1:
                mine, order = rows, positions
            else:
                chosen = kids == kid
                mine, order = rows[chosen], positions[chosen]
            values = mine[:, 3:].view(np.float64)
            for column, key in enumerate(key_sets[kid]):
                parts.setdefault(key, []).append((order, mine[:, 1], values[:, column], mine[:, 2]))
    return {key: _in_logging_order(found) for key, found in parts.items()}


def _in_logging_order(
    found: list[tuple[np.ndarray, ...]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One key's steps, values and times from its parts, ordered by entry position."""
    if len(found) == 1:
        _, steps, values, times = found[0]
        return steps, values, times
    order, steps, values, times = (np.concatenate(column) for column in zip(*found, strict=True))
    by_position = np.argsort(order, kind="stable")
    return steps[by_position], values[by_position], times[by_position]


def _transient(exc: Exception) -> bool:
    message = str(exc).lower()
    return any(word in message for word in ("locked", "busy", "deadlock", "could not serialize"))
