"""Distribution shift between two versions of a table: population stability index per column.

Numeric and temporal columns: the current version's values are binned on the reference
profile's histogram edges (values outside the edges fall in the first or last bin) and
compared with the reference counts. String and boolean columns: the distributions over the
reference's top values plus an ``other`` bucket. A constant reference column (one bin) is
compared on three bins: below, at and above its value. Columns whose profile withholds them
as personal data (see :mod:`plinth.quality.privacy`) are not compared: their values are never
binned, listed or shown.

Rules of thumb for PSI: below 0.1 no shift, 0.1 to 0.25 a moderate shift, above 0.25 a
significant one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from plinth.quality.profiles import (
    fold_histogram,
    histogram_sql,
    json_value,
    open_source,
    profile_version,
    sql_float,
)

if TYPE_CHECKING:
    import duckdb

    from plinth.lake import Lake
    from plinth.quality.profiles import SourceColumn

OTHER = "__other__"
#: PSI above which a shift is significant.
SIGNIFICANT_PSI = 0.25
#: PSI above which a shift is moderate.
MODERATE_PSI = 0.1


def psi(
    reference_counts: Sequence[float], current_counts: Sequence[float], eps: float = 1e-4
) -> float:
    """Return the population stability index between two binned distributions.

    Both are normalized to proportions; an empty bin counts as ``eps`` so the index stays
    finite. Raises ``ValueError`` if the bins do not match or either side is empty.

    Example:
        >>> psi([10, 20, 70], [10, 20, 70])
        0.0
        >>> round(psi([50, 50], [90, 10]), 3)
        0.879
    """
    if len(reference_counts) != len(current_counts):
        raise ValueError(
            f"PSI needs matching bins, got {len(reference_counts)} and {len(current_counts)}."
        )
    ref_total = float(sum(reference_counts))
    cur_total = float(sum(current_counts))
    if ref_total <= 0 or cur_total <= 0:
        raise ValueError("PSI needs at least one observation on each side.")
    total = 0.0
    for ref, cur in zip(reference_counts, current_counts, strict=True):
        p = max(ref / ref_total, eps)
        q = max(cur / cur_total, eps)
        total += (q - p) * math.log(q / p)
    return max(total, 0.0)


def severity(value: float | None) -> str:
    """Return ``none``, ``moderate`` or ``significant`` for a PSI value (``n/a`` for None).

    Example:
        >>> severity(0.05), severity(0.2), severity(0.4)
        ('none', 'moderate', 'significant')
    """
    if value is None:
        return "n/a"
    if value > SIGNIFICANT_PSI:
        return "significant"
    if value > MODERATE_PSI:
        return "moderate"
    return "none"


@dataclass(frozen=True)
class ColumnShift:
    """How one column's distribution moved from a reference version to the current one.

    ``reference`` and ``current`` hold ``{"edges", "counts"}`` for numeric and temporal
    columns (temporal edges in epoch seconds) and ``{"labels", "counts"}`` for string and
    boolean ones, the last label being :data:`OTHER`. ``psi`` is ``None`` when a side has no
    values. ``high_cardinality`` marks string columns whose values are mostly unique (their
    values are best not shown).
    """

    column: str
    kind: str
    psi: float | None
    reference: dict[str, Any]
    current: dict[str, Any]
    new_categories: list[Any] = field(default_factory=list)
    missing_categories: list[Any] = field(default_factory=list)
    reference_null_fraction: float = 0.0
    current_null_fraction: float = 0.0
    high_cardinality: bool = False

    @property
    def severity(self) -> str:
        """``none``, ``moderate``, ``significant`` or ``n/a`` (see :func:`severity`)."""
        return severity(self.psi)

    def to_dict(self) -> dict[str, Any]:
        """Return the shift as plain JSON.

        Example:
            >>> ColumnShift("a", "numeric", 0.0, {}, {}).to_dict()["psi"]
            0.0
        """
        return asdict(self)


def is_high_cardinality(column: dict[str, Any]) -> bool:
    """Return True for a string column whose values are mostly unique (ids, free text).

    Example:
        >>> is_high_cardinality({"kind": "categorical", "count": 100, "distinct": 97,
        ...                      "top": [{"value": "a", "count": 1}] * 20})
        True
    """
    if column.get("kind") != "categorical":
        return False
    count = column.get("count") or 0
    distinct = column.get("distinct") or 0
    return distinct > len(column.get("top") or []) and distinct >= 0.5 * count


def column_shifts(
    lake: Lake, table: str, reference_version: int, current_version: int
) -> list[ColumnShift]:
    """Return the shift of every column both versions share, largest PSI first.

    Uses the stored profiles of both versions (computing them if missing) and one DuckDB
    pass over the current version to bin it on the reference's edges. Columns withheld as
    personal data in either profile are left out.

    Example:
        >>> # [(s.column, round(s.psi, 3)) for s in column_shifts(ws.lake, "flights", 0, 1)]
    """
    from plinth.quality.privacy import is_withheld

    reference = profile_version(lake, table, reference_version)["columns"]
    current = profile_version(lake, table, current_version)["columns"]
    shared = [
        name
        for name, col in current.items()
        if name in reference
        and not (is_withheld(col) or is_withheld(reference[name]))
        and reference[name]["kind"] == col["kind"]
        and col["kind"] in ("numeric", "temporal", "categorical", "boolean")
    ]
    if not shared:
        return []
    shifts: list[ColumnShift] = []
    with open_source(lake.scan(table, current_version), view="src") as (con, columns):
        # Columns holding NaN or infinities are binned over their finite values, as profiled.
        by_name = {
            c.name: c.finite() if (current.get(c.name) or {}).get("non_finite") else c
            for c in columns
        }
        binned = _bin_current(con, [by_name[n] for n in shared], reference)
        for name in shared:
            ref, cur, col = reference[name], current[name], by_name[name]
            if ref["kind"] in ("numeric", "temporal"):
                ref_dist, cur_dist = binned[name]
                shifts.append(_shift(name, ref, cur, ref_dist, cur_dist))
            else:
                shifts.append(
                    _categorical_shift(lake, table, reference_version, con, col, ref, cur)
                )
    shifts.sort(key=lambda s: (s.psi is None, -(s.psi or 0.0), s.column))
    return shifts


def _bins(ref: dict[str, Any]) -> tuple[list[float], list[int]]:
    """Reference edges and counts; a one-bin (constant) histogram becomes below/at/above."""
    hist = ref.get("histogram") or {"edges": [], "counts": []}
    edges, counts = list(hist["edges"]), list(hist["counts"])
    if len(counts) == 1:
        return [edges[0], edges[0], edges[0], edges[0]], [0, counts[0], 0]
    return edges, counts


def _bin_current(
    con: duckdb.DuckDBPyConnection,
    columns: list[SourceColumn],
    reference: dict[str, dict[str, Any]],
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Bin the current values of numeric and temporal columns on the reference edges."""
    exprs: list[str] = []
    layout: list[str] = []
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for col in columns:
        if col.kind not in ("numeric", "temporal"):
            continue
        edges, counts = _bins(reference[col.name])
        ref_dist = {"edges": edges, "counts": counts}
        out[col.name] = (ref_dist, {"edges": edges, "counts": [0] * len(counts)})
        if not counts:
            continue
        layout.append(col.name)
        if len(counts) == 3 and edges[0] == edges[-1]:
            value = sql_float(edges[0])
            exprs.append(
                f"histogram(CASE WHEN {col.point} < {value} THEN 0 WHEN {col.point} = {value} "
                f"THEN 1 ELSE 2 END) FILTER (WHERE {col.point} IS NOT NULL)"
            )
        else:
            exprs.append(histogram_sql(col.point, edges[0], edges[-1], len(counts), clamp=True))
    if exprs:
        row = con.execute("SELECT " + ", ".join(exprs) + " FROM src").fetchone()
        assert row is not None
        for name, value in zip(layout, row, strict=True):
            out[name][1]["counts"] = fold_histogram(value, len(out[name][1]["counts"]))
    return out


def _shift(
    name: str,
    ref: dict[str, Any],
    cur: dict[str, Any],
    ref_dist: dict[str, Any],
    cur_dist: dict[str, Any],
    new: list[Any] | None = None,
    missing: list[Any] | None = None,
) -> ColumnShift:
    value: float | None = None
    if sum(ref_dist["counts"]) > 0 and sum(cur_dist["counts"]) > 0:
        value = psi(ref_dist["counts"], cur_dist["counts"])
    return ColumnShift(
        column=name,
        kind=ref["kind"],
        psi=value,
        reference=ref_dist,
        current=cur_dist,
        new_categories=new or [],
        missing_categories=missing or [],
        reference_null_fraction=float(ref.get("null_fraction") or 0.0),
        current_null_fraction=float(cur.get("null_fraction") or 0.0),
        high_cardinality=is_high_cardinality(ref) or is_high_cardinality(cur),
    )


def _categorical_shift(
    lake: Lake,
    table: str,
    reference_version: int,
    con: duckdb.DuckDBPyConnection,
    col: SourceColumn,
    ref: dict[str, Any],
    cur: dict[str, Any],
) -> ColumnShift:
    """Compare a string or boolean column over the reference's top values plus ``other``."""
    ref_top = [(t["value"], int(t["count"])) for t in ref.get("top") or []]
    cur_top = [(t["value"], int(t["count"])) for t in cur.get("top") or []]
    labels = [v for v, _ in ref_top]
    ref_counts = [n for _, n in ref_top] + [int(ref.get("other_count") or 0)]
    if not cur.get("other_count"):
        # The current profile lists every value it has: no query needed.
        known = dict(cur_top)
        found = {v: known.get(v, 0) for v in labels}
    else:
        found = _count_values(con, col.value, labels)
    cur_matched = [found.get(v, 0) for v in labels]
    cur_counts = [*cur_matched, int(cur.get("count") or 0) - sum(cur_matched)]
    missing = [v for v, n in zip(labels, cur_matched, strict=True) if n == 0]
    candidates = [v for v, _ in cur_top if v not in set(labels)]
    if candidates and ref.get("other_count"):
        with open_source(lake.scan(table, reference_version), view="src") as (ref_con, cols):
            ref_col = next(c for c in cols if c.name == col.name)
            seen = _count_values(ref_con, ref_col.value, candidates)
        candidates = [v for v in candidates if not seen.get(v)]
    return _shift(
        col.name,
        ref,
        cur,
        {"labels": [*labels, OTHER], "counts": ref_counts},
        {"labels": [*labels, OTHER], "counts": cur_counts},
        new=[json_value(v) for v in candidates],
        missing=[json_value(v) for v in missing],
    )


def _count_values(con: duckdb.DuckDBPyConnection, value: str, wanted: list[Any]) -> dict[Any, int]:
    """Count the rows of each of ``wanted`` in column SQL ``value`` of view ``src``."""
    if not wanted:
        return {}
    rows = con.execute(
        f"SELECT {value}, count(*) FROM src WHERE list_contains($wanted, {value}) GROUP BY 1",
        {"wanted": list(wanted)},
    ).fetchall()
    return {v: int(n) for v, n in rows}
