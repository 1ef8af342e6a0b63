"""Data quality of served traffic: nulls, values outside the reference or the contract, unseen
categories, and the latency of the answers, all as counts that add up window over window.

Null and unseen-category counts come with each column's drift counts
(:class:`~plinth.monitoring.drift.WindowCounts`); this module adds, per numeric column, the
values below or above the reference's range and those breaking the contract's ``min``/``max``,
and per categorical column the values outside the contract's ``allowed`` list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from plinth.monitoring.drift import NumericReference, Reference, WindowCounts
from plinth.monitoring.profile import Bounds

#: Latency histogram edges in milliseconds: 10 us to 100 s, 12 bins per decade (about 21% wide).
LATENCY_EDGES = np.logspace(-2, 5, 7 * 12 + 1)


@dataclass(frozen=True)
class ColumnQuality:
    """Out-of-bounds counts of one column in a window; windows add up."""

    below: int = 0
    above: int = 0
    invalid: int = 0

    def __add__(self, other: ColumnQuality) -> ColumnQuality:
        return ColumnQuality(
            self.below + other.below, self.above + other.above, self.invalid + other.invalid
        )

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready dictionary."""
        return {"below": self.below, "above": self.above, "invalid": self.invalid}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnQuality:
        """Rebuild from :meth:`to_dict`.

        Example:
            >>> ColumnQuality.from_dict({"below": 1, "above": 0, "invalid": 2}).invalid
            2
        """
        return cls(int(data["below"]), int(data["above"]), int(data["invalid"]))


def column_quality(reference: Reference, bounds: Bounds, values: Any) -> ColumnQuality:
    """Count a window's values outside the reference range and the contract.

    Example:
        >>> ref = NumericReference.fit(np.arange(10.0))
        >>> q = column_quality(ref, Bounds(0.0, 9.0, contract_max=20.0), [-1.0, 5.0, 25.0])
        >>> (q.below, q.above, q.invalid)
        (1, 1, 1)
    """
    if isinstance(reference, NumericReference):
        array = np.asarray(values, dtype=np.float64)
        below = int(np.sum(array < bounds.low)) if bounds.low is not None else 0
        above = int(np.sum(array > bounds.high)) if bounds.high is not None else 0
        invalid = np.zeros(array.shape, dtype=bool)
        if bounds.contract_min is not None:
            invalid |= array < bounds.contract_min
        if bounds.contract_max is not None:
            invalid |= array > bounds.contract_max
        return ColumnQuality(below, above, int(invalid.sum()))
    if bounds.allowed is None:
        return ColumnQuality()
    import pyarrow as pa
    import pyarrow.compute as pc

    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    array = pc.cast(array, pa.string())
    ok = pc.is_in(array, value_set=pa.array(list(bounds.allowed), pa.string()))
    return ColumnQuality(
        invalid=int(pc.sum(pc.and_(pc.invert(ok), pc.is_valid(array))).as_py() or 0)
    )


def quality_summary(
    counts: WindowCounts, quality: ColumnQuality, reference: Reference
) -> dict[str, Any]:
    """Shares for one column of a window: nulls (and the reference's), outside the reference
    range, breaking the contract, unseen categories (most frequent first).

    Example:
        >>> ref = NumericReference.fit(np.arange(10.0))
        >>> w = ref.counts([1.0, float("nan")])
        >>> quality_summary(w, ColumnQuality(), ref)["null_share"]
        0.5
    """
    total = counts.rows + counts.nulls
    ref_total = int(reference.counts_.sum()) + reference.nulls
    unseen = dict(sorted(counts.unseen.items(), key=lambda kv: -kv[1])[:20])
    return {
        "rows": total,
        "null_share": counts.nulls / total if total else 0.0,
        "null_share_reference": reference.nulls / ref_total if ref_total else 0.0,
        "outside_reference_share": (quality.below + quality.above) / total if total else 0.0,
        "out_of_range_share": quality.invalid / total if total else 0.0,
        "unseen_share": sum(counts.unseen.values()) / total if total else 0.0,
        "unseen": unseen,
    }


def latency_counts(latency_ms: Any) -> WindowCounts:
    """A window's latencies counted over :data:`LATENCY_EDGES`.

    Example:
        >>> latency_counts([1.0, 2.0, float("nan")]).nulls
        1
    """
    array = np.asarray(latency_ms, dtype=np.float64)
    missing = np.isnan(array)
    index = np.searchsorted(LATENCY_EDGES, array[~missing], side="right")
    return WindowCounts(np.bincount(index, minlength=LATENCY_EDGES.size + 1), int(missing.sum()))


def latency_percentiles(counts: WindowCounts) -> dict[str, float | None]:
    """p50, p95 and p99 (ms) from a latency histogram, read at each bin's geometric middle.

    Example:
        >>> round(latency_percentiles(latency_counts([2.0] * 100))["p99_ms"], 1)
        2.0
    """
    total = counts.rows
    out: dict[str, float | None] = {}
    edges = LATENCY_EDGES
    middles = np.r_[edges[0], np.sqrt(edges[:-1] * edges[1:]), edges[-1]]
    cumulative = np.cumsum(counts.counts)
    for name, q in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        if total == 0:
            out[name] = None
            continue
        index = int(np.searchsorted(cumulative, q * total, side="left"))
        out[name] = float(middles[min(index, middles.size - 1)])
    return out
