"""Metric series read back from the catalog, downsampled when long.

Points are stored packed, a chunk of consecutive points per row (see
:mod:`plinth.tracking.points`). The series' size and step range come from the chunk rows'
columns in SQL; the packed arrays are then streamed from the database in batches and reduced
as they arrive, so memory stays bounded by one buffer however long the series is.

A series with more points than asked for is cut into buckets of equal step range; each bucket
keeps its lowest and its highest point (so a spike or a dip survives), and the first and last
points of the series are always kept. A bucket whose points are all NaN keeps one of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plinth.catalog.models import MetricChunk, Run, RunMetric
from plinth.errors import ConfigError, NotFoundError, RunNotFoundError
from plinth.tracking.points import unpack

if TYPE_CHECKING:
    from plinth.workspace import Workspace

__all__ = ["MIN_POINTS", "MetricHistory", "downsample", "metric_history"]

#: Fewest points a caller may ask for: the first and the last.
MIN_POINTS = 2
#: Points buffered from the database before they are reduced to each bucket's extremes.
BUFFER_POINTS = 1_000_000
#: Chunk rows fetched from the database per round trip.
FETCH_CHUNKS = 64


@dataclass(frozen=True)
class MetricHistory:
    """The points of one metric series of one run, in step order.

    ``values`` holds ``float('nan')`` where NaN was logged; ``total`` is the number of points
    stored, which is more than ``len(steps)`` when the series was downsampled.
    """

    run_id: str
    key: str
    steps: list[int]
    values: list[float]
    timestamps: list[datetime]
    total: int

    @property
    def downsampled(self) -> bool:
        """True when fewer points came back than the series holds."""
        return len(self.steps) < self.total

    def to_dict(self) -> dict[str, Any]:
        """The history as JSON-ready data; NaN and infinities become ``None``.

        Example:
            >>> h = MetricHistory("r", "loss", [0], [float("nan")], [datetime(2026, 1, 1)], 1)
            >>> h.to_dict()["values"]
            [None]
        """
        return {
            "run_id": self.run_id,
            "key": self.key,
            "total": self.total,
            "downsampled": self.downsampled,
            "steps": self.steps,
            "values": [v if math.isfinite(v) else None for v in self.values],
            "timestamps": [t.isoformat() for t in self.timestamps],
        }


def _timestamp(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _metric_id(session: Session, run_id: str, key: str) -> int:
    """The id of ``run_id``'s series ``key``, or a NotFound error saying which part is missing."""
    found = session.execute(
        select(RunMetric.id).where(RunMetric.run_id == run_id, RunMetric.key == key)
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    if session.get(Run, run_id) is None:
        raise RunNotFoundError(
            f"No run has the id '{run_id}'.", hint="Run 'plinth runs list' to see the runs."
        )
    keys = session.scalars(
        select(RunMetric.key).where(RunMetric.run_id == run_id).order_by(RunMetric.key)
    ).all()
    listed = ", ".join(keys[:20]) + (", ..." if len(keys) > 20 else "")
    raise NotFoundError(
        f"Run '{run_id}' has no metric '{key}'.",
        hint=f"Its metrics are: {listed}." if keys else "The run has logged no metrics.",
    )


def _first_per_group(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Positions (into the unsorted arrays) of the first element of each group in ``order``."""
    ordered = groups[order]
    starts = np.empty(len(order), dtype=bool)
    starts[:1] = True
    starts[1:] = ordered[1:] != ordered[:-1]
    return order[starts]


def _keep(
    steps: np.ndarray, values: np.ndarray, seq: np.ndarray, first: int, width: int, buckets: int
) -> np.ndarray:
    """Indices of the points to keep: the series' ends and each bucket's extremes.

    Ties go to the lower step, then to the earlier logged point (lower ``seq``); the last
    point is the highest step, the latest logged on ties, as in the series summary.
    """
    keep = np.zeros(len(steps), dtype=bool)
    by_step = np.lexsort((seq, steps))
    keep[by_step[0]] = keep[by_step[-1]] = True
    if buckets:
        bucket = (steps - first) // width
        finite = ~np.isnan(values)
        real = np.flatnonzero(finite)
        if len(real):
            b, v, s, q = bucket[real], values[real], steps[real], seq[real]
            keep[real[_first_per_group(b, np.lexsort((q, s, v, b)))]] = True
            keep[real[_first_per_group(b, np.lexsort((q, s, -v, b)))]] = True
        nan = np.flatnonzero(~finite)
        if len(nan):
            nan = nan[~np.isin(bucket[nan], bucket[real])]
            b, s, q = bucket[nan], steps[nan], seq[nan]
            keep[nan[_first_per_group(b, np.lexsort((q, s, b)))]] = True
    return np.flatnonzero(keep)


def downsample(
    chunks: Iterable[tuple[bytes, bytes, bytes]], first: int, last: int, max_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reduce packed chunks, streamed in logging order, to at most ``max_points`` points.

    ``first`` and ``last`` are the series' lowest and highest steps. Returns steps, values
    and timestamps (microseconds), in step order.

    Example:
        >>> from plinth.tracking.points import pack
        >>> row = pack(list(range(100)), [float(i % 7) for i in range(100)], [0] * 100)
        >>> steps, values, _ = downsample([(row["steps"], row["values"], row["timestamps_us"])],
        ...                               0, 99, 10)
        >>> bool(len(steps) <= 10 and steps[0] == 0 and steps[-1] == 99)
        True
    """
    buckets = max((max_points - 2) // 2, 0)
    # Integer widths keep (step - first) // width below ``buckets`` for every step.
    width = max(-(-(last - first + 1) // buckets), 1) if buckets else 1
    kept: list[np.ndarray] = []  # steps, values, timestamps, seq of the candidates so far
    pending: list[tuple[bytes, bytes, bytes]] = []
    pending_points = 0
    seen = 0

    def reduce() -> None:
        nonlocal pending, pending_points, seen, kept
        series = unpack(pending)
        count = len(series)
        arrays = [
            series.steps,
            series.values,
            series.timestamps_us,
            np.arange(seen, seen + count, dtype=np.int64),
        ]
        seen += count
        if kept:
            arrays = [np.concatenate((old, new)) for old, new in zip(kept, arrays, strict=True)]
        pending, pending_points = [], 0
        if len(arrays[0]):
            index = _keep(arrays[0], arrays[1], arrays[3], first, width, buckets)
            kept = [a[index] for a in arrays]

    for chunk in chunks:
        pending.append(chunk)
        pending_points += len(chunk[0]) // 8
        if pending_points >= BUFFER_POINTS:
            reduce()
    reduce()
    if not kept:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.empty(0, dtype=np.float64), empty
    order = np.lexsort((kept[3], kept[0]))
    return kept[0][order], kept[1][order], kept[2][order]


def _history(session: Session, run_id: str, key: str, max_points: int) -> MetricHistory:
    metric_id = _metric_id(session, run_id, key)
    total, first, last = session.execute(
        select(
            func.coalesce(func.sum(MetricChunk.count), 0),
            func.min(MetricChunk.first_step),
            func.max(MetricChunk.last_step),
        ).where(MetricChunk.metric_id == metric_id)
    ).one()
    rows = session.execute(
        select(MetricChunk.steps, MetricChunk.values, MetricChunk.timestamps_us)
        .where(MetricChunk.metric_id == metric_id)
        .order_by(MetricChunk.id),
        execution_options={"yield_per": FETCH_CHUNKS},
    )
    chunks = ((bytes(r[0]), bytes(r[1]), bytes(r[2])) for r in rows)
    if total <= max_points:
        series = unpack(chunks).sorted()
        steps, values, times = series.steps, series.values, series.timestamps_us
    else:
        steps, values, times = downsample(chunks, int(first), int(last), max_points)
    return MetricHistory(
        run_id=run_id,
        key=key,
        steps=steps.tolist(),
        values=values.tolist(),
        timestamps=[_timestamp(t) for t in times.tolist()],
        total=int(total),
    )


def metric_history(
    source: Session | Workspace, run_id: str, key: str, max_points: int = 1000
) -> MetricHistory:
    """Read one metric series of a run, downsampled on the server to at most ``max_points``.

    ``source`` is an open catalog session or a workspace. A series longer than
    ``max_points`` keeps, per bucket of equal step range, its lowest and highest point, plus
    the first and last point of the series; NaN comes back as ``float('nan')``. Points of
    one step come back in the order they were logged.

    Raises :class:`~plinth.errors.RunNotFoundError` for an unknown run and
    :class:`~plinth.errors.NotFoundError` for a metric the run never logged.

    Example:
        >>> # h = metric_history(ws, run.id, "loss", max_points=500); h.steps[:3], h.values[:3]
    """
    if max_points < MIN_POINTS:
        raise ConfigError(
            f"max_points must be at least {MIN_POINTS}, not {max_points}.",
            hint="Ask for 1000 points, say: enough for any chart.",
        )
    if isinstance(source, Session):
        return _history(source, run_id, key, max_points)
    with source.catalog.session() as session:
        return _history(session, run_id, key, max_points)
