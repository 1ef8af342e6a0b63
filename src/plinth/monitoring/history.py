"""Monitoring history: the prediction log folded, hour by hour, into stored additive counts.

Each update reads only the log's data files added since the profile's watermark (the log
version last folded in), counts the new rows of the profile's model version into hourly
buckets (drift histograms, quality counts, latency histogram) and adds them to the stored
buckets together with the new watermark, in one catalog transaction. A window of any whole
number of hours is then the sum of its buckets, so a new window never rescans history. If the
log was rewritten (rows deleted or files compacted) the profile's buckets are rebuilt from the
whole log.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.errors import ConfigError, NotFoundError
from plinth.monitoring.drift import (
    CategoricalReference,
    DriftReport,
    NumericReference,
    Thresholds,
    WindowCounts,
    drift_report,
)
from plinth.monitoring.profile import MonitorProfile
from plinth.monitoring.quality import (
    LATENCY_EDGES,
    ColumnQuality,
    latency_percentiles,
    quality_summary,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.workspace import Workspace

HOUR_US = 3_600_000_000
_RETRIES = 5


@dataclass(frozen=True)
class HistoryUpdate:
    """What one update folded in."""

    rows: int
    buckets: int
    log_version: int | None
    rebuilt: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return dict(self.__dict__)


@dataclass
class StoredWindow:
    """A window of stored traffic counts: drift histograms, quality counts and latency."""

    start: datetime
    end: datetime
    rows: int
    counts: dict[str, WindowCounts]
    quality: dict[str, ColumnQuality]
    latency: WindowCounts

    def __iadd__(self, other: StoredWindow) -> StoredWindow:
        self.rows += other.rows
        for name, counts in other.counts.items():
            mine = self.counts.get(name)
            self.counts[name] = counts if mine is None else mine + counts
        for name, quality in other.quality.items():
            mine_q = self.quality.get(name)
            self.quality[name] = quality if mine_q is None else mine_q + quality
        self.latency = self.latency + other.latency
        return self

    def drift(self, profile: MonitorProfile, thresholds: Thresholds | None = None) -> DriftReport:
        """This window's drift against the profile's reference.

        Example:
            >>> # stored_windows(ws, profile, "1d")[-1].drift(profile).flagged()
        """
        references = {k: v for k, v in profile.references.items() if k in self.counts}
        return drift_report(references, self.counts, thresholds)

    def quality_report(self, profile: MonitorProfile) -> dict[str, dict[str, Any]]:
        """Per column: null, outside-reference, out-of-contract and unseen shares."""
        return {
            name: quality_summary(
                counts, self.quality.get(name, ColumnQuality()), profile.references[name]
            )
            for name, counts in self.counts.items()
        }

    def latency_report(self) -> dict[str, float | None]:
        """Latency percentiles of the window's answers (ms)."""
        return latency_percentiles(self.latency)


def _empty_latency() -> WindowCounts:
    return WindowCounts(np.zeros(LATENCY_EDGES.size + 1, np.int64), 0)


def update_history(ws: Workspace, profile: MonitorProfile) -> HistoryUpdate:
    """Fold the prediction-log rows added since the profile's watermark into its buckets.

    Example:
        >>> # update_history(ws, ensure_profile(ws, "delay@champion")).rows
    """
    from plinth.monitoring.service import no_log
    from plinth.serving.prediction_log import log_table

    started = time.perf_counter()
    table_name = log_table(profile.model)
    for _ in range(_RETRIES):
        watermark = _watermark(ws, profile.id)
        try:
            dataset, latest, rebuilt = ws.lake.added_since(table_name, watermark)
        except NotFoundError as exc:
            raise no_log(profile.model) from exc
        if latest == watermark and not rebuilt:
            return HistoryUpdate(0, 0, latest, False, time.perf_counter() - started)
        rows = _traffic(dataset, profile)
        buckets = _count_buckets(profile, rows)
        if _store(ws, profile, buckets, watermark, latest, rebuilt):
            profile.log_version = latest
            return HistoryUpdate(
                rows.num_rows,
                len(buckets),
                latest,
                rebuilt and watermark is not None,
                time.perf_counter() - started,
            )
    raise ConfigError(
        f"The monitoring history of '{profile.model}' kept changing under this update.",
        hint="Another 'plinth monitor' process is updating it; try again.",
    )


def _watermark(ws: Workspace, profile_id: int) -> int | None:
    from plinth.catalog.models import MonitorProfile as Row

    with ws.catalog.session() as session:
        row = session.get(Row, profile_id)
        if row is None:
            raise NotFoundError(f"Monitoring profile {profile_id} is gone.")
        return row.log_version


def _traffic(dataset: Any, profile: MonitorProfile) -> pa.Table:
    """The non-shadow rows of the profile's model version, with the columns counted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = set(dataset.schema.names)
    if "event_time" not in names:
        raise ConfigError("The prediction log has no event_time column.")
    extra = [c for c in ("route", "model_version") if c in names]
    wanted = ["event_time", "latency_ms", *extra] + [c for c in profile.columns if c in names]
    table = dataset.to_table(columns=[c for c in wanted if c in names])
    # Rewritten files may hold string_view columns: compare as plain strings.
    keep = pc.is_valid(table["event_time"])
    if "route" in extra:
        route = pc.cast(table["route"], pa.string())
        keep = pc.and_(keep, pc.fill_null(pc.not_equal(route, "shadow"), True))
    if "model_version" in extra:
        keep = pc.and_(keep, pc.fill_null(pc.equal(table["model_version"], profile.version), False))
    table = table.filter(keep)
    return table.drop_columns(extra)


def _count_buckets(profile: MonitorProfile, rows: pa.Table) -> dict[datetime, StoredWindow]:
    """Counts per hour, computed for all hours at once (one bincount per column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if rows.num_rows == 0:
        return {}
    micros = pc.cast(rows["event_time"], pa.timestamp("us", tz="UTC")).cast(pa.int64())
    hours = np.floor_divide(micros.to_numpy(zero_copy_only=False), HOUR_US)
    unique, group = np.unique(hours, return_inverse=True)
    groups = unique.size
    per_group = np.bincount(group, minlength=groups)
    counts: dict[str, list[WindowCounts]] = {}
    quality: dict[str, list[ColumnQuality]] = {}
    for name in profile.columns:
        if name not in rows.column_names:
            continue
        ref = profile.references[name]
        bounds = profile.bounds.get(name)
        if isinstance(ref, NumericReference):
            values = rows[name].to_numpy(zero_copy_only=False).astype(np.float64)
            counts[name] = _numeric_counts(ref.edges, values, group, groups)
            if bounds is not None:
                quality[name] = _numeric_quality(bounds, values, group, groups)
        else:
            counts[name], invalid = _categorical_counts(
                ref, bounds.allowed if bounds else None, rows[name], group, groups
            )
            quality[name] = [ColumnQuality(invalid=int(n)) for n in invalid]
    latency = (
        _numeric_counts(
            LATENCY_EDGES,
            rows["latency_ms"].to_numpy(zero_copy_only=False).astype(np.float64),
            group,
            groups,
        )
        if "latency_ms" in rows.column_names
        else [_empty_latency()] * groups
    )
    out = {}
    for g in range(groups):
        start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=int(unique[g]))
        out[start] = StoredWindow(
            start,
            start + timedelta(hours=1),
            int(per_group[g]),
            {name: c[g] for name, c in counts.items()},
            {name: q[g] for name, q in quality.items()},
            latency[g],
        )
    return out


def _numeric_counts(
    edges: np.ndarray, values: np.ndarray, group: np.ndarray, groups: int
) -> list[WindowCounts]:
    missing = np.isnan(values)
    width = edges.size + 1
    index = np.searchsorted(edges, values[~missing], side="right")
    flat = np.bincount(group[~missing] * width + index, minlength=groups * width)
    nulls = np.bincount(group[missing], minlength=groups)
    table = flat.reshape(groups, width)
    return [WindowCounts(table[g], int(nulls[g])) for g in range(groups)]


def _numeric_quality(
    bounds: Any, values: np.ndarray, group: np.ndarray, groups: int
) -> list[ColumnQuality]:
    with np.errstate(invalid="ignore"):
        below = values < bounds.low if bounds.low is not None else np.zeros(values.shape, bool)
        above = values > bounds.high if bounds.high is not None else np.zeros(values.shape, bool)
        invalid = np.zeros(values.shape, bool)
        if bounds.contract_min is not None:
            invalid |= values < bounds.contract_min
        if bounds.contract_max is not None:
            invalid |= values > bounds.contract_max
    b = np.bincount(group[below], minlength=groups)
    a = np.bincount(group[above], minlength=groups)
    i = np.bincount(group[invalid], minlength=groups)
    return [ColumnQuality(int(b[g]), int(a[g]), int(i[g])) for g in range(groups)]


def _categorical_counts(
    ref: CategoricalReference,
    allowed: tuple[str, ...] | None,
    column: Any,
    group: np.ndarray,
    groups: int,
) -> tuple[list[WindowCounts], np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pc.cast(column, pa.string()).combine_chunks().dictionary_encode()
    labels = [str(v) for v in array.dictionary.to_pylist()]
    codes = array.indices.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), bool)
    codes = np.where(valid, codes, 0).astype(np.int64)
    slot_of = {c: i for i, c in enumerate(ref.categories)}
    other = len(ref.categories)
    slots = np.array([slot_of.get(label, other) for label in labels] or [other], np.int64)
    width = other + 1
    row_slot = slots[codes]
    flat = np.bincount(group[valid] * width + row_slot[valid], minlength=groups * width)
    table = flat.reshape(groups, width)
    nulls = np.bincount(group[~valid], minlength=groups)
    unseen_codes = [i for i, label in enumerate(labels) if label not in slot_of]
    unseen: list[dict[str, int]] = [{} for _ in range(groups)]
    if unseen_codes:
        is_unseen = valid & np.isin(codes, unseen_codes)
        pairs = np.bincount(
            group[is_unseen] * len(labels) + codes[is_unseen], minlength=groups * len(labels)
        ).reshape(groups, len(labels))
        for g, code in zip(*np.nonzero(pairs), strict=True):
            unseen[g][labels[code]] = int(pairs[g, code])
    invalid = np.zeros(groups, np.int64)
    if allowed is not None:
        allowed_set = set(allowed)
        bad_codes = [i for i, label in enumerate(labels) if label not in allowed_set]
        if bad_codes:
            bad = valid & np.isin(codes, bad_codes)
            invalid = np.bincount(group[bad], minlength=groups)
    counts = [WindowCounts(table[g], int(nulls[g]), unseen[g]) for g in range(groups)]
    return counts, invalid


def _store(
    ws: Workspace,
    profile: MonitorProfile,
    buckets: Mapping[datetime, StoredWindow],
    watermark: int | None,
    latest: int,
    rebuilt: bool,
) -> bool:
    """Add the buckets and move the watermark in one transaction; False if it moved meanwhile."""
    from sqlalchemy import delete, select

    from plinth.catalog.models import MonitorBucket
    from plinth.catalog.models import MonitorProfile as Row

    now = datetime.now(UTC)
    with ws.catalog.session() as session:
        row = session.scalar(select(Row).where(Row.id == profile.id).with_for_update())
        if row is None or row.log_version != watermark:
            return False
        if rebuilt:
            session.execute(delete(MonitorBucket).where(MonitorBucket.profile_id == profile.id))
            existing = {}
        else:
            found = session.scalars(
                select(MonitorBucket).where(
                    MonitorBucket.profile_id == profile.id,
                    MonitorBucket.start.in_(list(buckets)),
                )
            ).all()
            existing = {b.start: b for b in found}
        for start, window in buckets.items():
            old = existing.get(start)
            if old is not None:
                merged = _from_bucket(old)
                merged += window
                _fill(old, merged, now)
            else:
                fresh = MonitorBucket(profile_id=profile.id, start=start)
                _fill(fresh, window, now)
                session.add(fresh)
        row.log_version = latest
        row.updated_at = now
    return True


def _fill(row: Any, window: StoredWindow, now: datetime) -> None:
    row.rows = window.rows
    row.counts = {name: c.to_dict() for name, c in window.counts.items()}
    row.quality = {name: q.to_dict() for name, q in window.quality.items()}
    row.latency = window.latency.to_dict()
    row.updated_at = now


def _from_bucket(row: Any) -> StoredWindow:
    return StoredWindow(
        row.start,
        row.start + timedelta(hours=1),
        row.rows,
        {name: WindowCounts.from_dict(c) for name, c in row.counts.items()},
        {name: ColumnQuality.from_dict(q) for name, q in row.quality.items()},
        WindowCounts.from_dict(row.latency) if row.latency else _empty_latency(),
    )


def stored_windows(
    ws: Workspace,
    profile: MonitorProfile,
    window: str = "1d",
    *,
    since: datetime | None = None,
) -> list[StoredWindow]:
    """Windows of a whole number of hours, summed from the stored hourly buckets.

    Example:
        >>> # [w.rows for w in stored_windows(ws, profile, "1d")]
    """
    from sqlalchemy import select

    from plinth.catalog.models import MonitorBucket
    from plinth.monitoring.service import parse_window

    kind, size = parse_window(window)
    if kind != "time" or size % 3600:
        raise ConfigError(
            f"The stored history sums whole hours; '{window}' is not a whole number of hours.",
            hint="Use 1h, 6h, 1d, 7d, 30d ... (row windows and shorter ones: "
            "'plinth monitor drift --window 10000rows' scans the log).",
        )
    hours = int(size // 3600)
    query = select(MonitorBucket).where(MonitorBucket.profile_id == profile.id)
    if since is not None:
        query = query.where(MonitorBucket.start >= since)
    with ws.catalog.session() as session:
        buckets = [_from_bucket(b) for b in session.scalars(query.order_by(MonitorBucket.start))]
    out: dict[int, StoredWindow] = {}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for bucket in buckets:
        index = int((bucket.start - epoch) // timedelta(hours=1)) // hours
        current = out.get(index)
        if current is None:
            start = epoch + timedelta(hours=index * hours)
            current = StoredWindow(
                start, start + timedelta(hours=hours), 0, {}, {}, _empty_latency()
            )
            out[index] = current
        current += bucket
    return [out[k] for k in sorted(out)]
