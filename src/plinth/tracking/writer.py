"""Metric points written in batches on a background thread, so logging never waits on the DB.

The training thread appends ``(key, step, value, time)`` to a deque (atomic, no lock); the
writer thread drains it every ``interval`` seconds and writes everything it took in one
transaction: new series rows, the points (``COPY`` on PostgreSQL, a multi-row ``executemany``
on SQLite) and the series summaries. ``flush`` puts a marker in the deque and waits until the
writer has passed it, so a flush covers exactly the points logged before it. When the deque
holds ``max_buffered`` points, logging waits for a flush instead of growing without bound.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text

from plinth._core.clock import utcnow
from plinth.errors import CatalogError, ConfigError

INTERVAL_S = 0.25
MAX_BUFFERED = 2_000_000
RETRIES = 5

_Point = tuple[str, int, float, int]


class _Marker:
    """A flush request travelling through the queue behind the points it covers."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class MetricWriter:
    """Buffer a run's metric points and write them in batches off the calling thread.

    Example:
        >>> # writer = MetricWriter(ws.catalog, run_id); writer.add("loss", 0, 0.5, 0)
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
        self._max = max_buffered
        self._queue: deque[_Point | _Marker] = deque()
        self._series: dict[str, int] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._error: BaseException | None = None
        self.written = 0
        self._thread = threading.Thread(
            target=self._loop, name=f"plinth-metrics-{run_id}", daemon=True
        )
        self._thread.start()

    # -- the training thread's side ------------------------------------------------------

    def add(self, key: str, step: int, value: float, timestamp_us: int) -> None:
        """Queue one point; waits only when ``max_buffered`` points are already queued."""
        queue = self._queue
        queue.append((key, step, value, timestamp_us))
        if len(queue) >= self._max:
            self.flush()

    def flush(self, timeout: float | None = None) -> None:
        """Write every point queued so far and wait until it is committed.

        Raises the writer's error, if writing failed, as a :class:`CatalogError`.
        """
        self._raise_error()
        if not self._thread.is_alive():
            self._write_all(self._take())  # the thread stopped; write on the caller's thread
            return
        marker = _Marker()
        self._queue.append(marker)
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
        queue = self._queue
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
                    self._queue.extendleft(reversed([i for i in items if type(i) is tuple]))
                    for item in items:
                        if type(item) is _Marker:
                            item.done.set()
            if self._stopping and not self._queue:
                return

    def _write_all(self, items: list[_Point | _Marker]) -> None:
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
                self.written += len(points)
                return
            except Exception as exc:
                if attempt == RETRIES - 1 or not _transient(exc):
                    raise
                time.sleep(0.1 * 2**attempt)

    def _write_once(self, points: list[_Point]) -> None:
        summaries = _summaries(points)
        engine = self._catalog.engine
        with engine.begin() as connection:
            ids = self._series_ids(connection, summaries)
            rows = [(ids[k], s, v if v == v else None, t) for k, s, v, t in points]
            if engine.dialect.name == "postgresql":
                _copy_points(connection, rows)
            else:
                connection.exec_driver_sql(
                    "INSERT INTO metric_points (metric_id, step, value, timestamp_us) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                )
            now = utcnow().replace(tzinfo=None)
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
                [{**summary, "id": ids[key], "now": now} for key, summary in summaries.items()],
            )
        self._series = ids  # only once committed: a rolled-back series row must be re-created

    def _series_ids(self, connection: Any, summaries: dict[str, dict[str, Any]]) -> dict[str, int]:
        missing = [key for key in summaries if key not in self._series]
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


def _summaries(points: Iterable[_Point]) -> dict[str, dict[str, Any]]:
    """Per key: the point with the highest step (latest logged on ties), min, max, count."""
    out: dict[str, dict[str, Any]] = {}
    for key, step, value, _ in points:
        summary = out.get(key)
        number = value if value == value else None
        if summary is None:
            out[key] = {"last": number, "last_step": step, "min": number, "max": number,
                        "count": 1}  # fmt: skip
            continue
        summary["count"] += 1
        if step >= summary["last_step"]:
            summary["last"], summary["last_step"] = number, step
        if number is not None:
            if summary["min"] is None or number < summary["min"]:
                summary["min"] = number
            if summary["max"] is None or number > summary["max"]:
                summary["max"] = number
    return out


def _copy_points(connection: Any, rows: list[tuple[int, int, float | None, int]]) -> None:
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(
        "COPY metric_points (metric_id, step, value, timestamp_us) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def _transient(exc: Exception) -> bool:
    message = str(exc).lower()
    return any(word in message for word in ("locked", "busy", "deadlock", "could not serialize"))


def check_value(key: str, value: Any) -> float:
    """Return a metric value as a float; NaN and infinities are kept (NaN is stored as NULL).

    Example:
        >>> check_value("loss", 1), check_value("loss", float("inf"))
        (1.0, inf)
    """
    if isinstance(value, float):
        return value
    if isinstance(value, (bool, str, bytes)):
        raise ConfigError(
            f"Metric '{key}' got {value!r} ({type(value).__name__}), not a number.",
            hint="Log numbers (int, float, or a numpy/torch scalar); use tags for text.",
        )
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"Metric '{key}' got a {type(value).__name__}, which is not a number.",
            hint="Log a number; for a tensor call .item() first.",
        ) from exc
