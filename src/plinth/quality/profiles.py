"""Column profiles of a table version: counts, nulls, distinct values, statistics, histograms.

Computed with DuckDB over Arrow data, never loading the table into memory: one aggregate pass
for counts, distinct values, extremes and means, one for histograms and spreads, one query over
a row sample for quantiles, one grouping query per string column for its top values. Local
Parquet datasets (the embedded lake) are read by DuckDB's Parquet reader, others through Arrow.

A profile is plain JSON: ``{"row_count": N, "columns": {name: {"type", "kind", "count",
"nulls", "null_fraction", "distinct", ...}}}``. Numeric columns add ``min, max, mean, std``
(sample, ``ddof=1``), ``quantiles`` (exact up to :data:`QUANTILE_SAMPLE_ROWS` rows, from a
uniform row sample beyond) and ``histogram: {"edges", "counts"}`` with fixed equal-width bins
from minimum to maximum, both included (one bin for a constant column, none without values).
Temporal columns give ``min``/``max`` in ISO 8601 and bin epoch seconds. String and boolean
columns list their ``top`` values by count, ties by value, and ``other_count``. NaN and
infinite floats count as values and as ``non_finite``; statistics cover the finite ones.

Stored profiles withhold personal data: a column the table's contract marks ``pii`` keeps
only counts and is marked ``"pii": true`` (see :mod:`plinth.quality.privacy`), both when the
profile is stored and whenever it is read back.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from plinth._core.clock import utcnow
from plinth._core.sql import quote
from plinth.lake.duck import local_parquet_files

if TYPE_CHECKING:
    import duckdb

    from plinth.catalog import Catalog
    from plinth.lake import Lake

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: Tables up to this many rows get exact quantiles; larger ones a uniform sample of this size.
QUANTILE_SAMPLE_ROWS = 100_000
KINDS = ("numeric", "categorical", "temporal", "boolean", "other")
_LEADING = ("type", "kind", "count", "nulls", "null_fraction", "distinct")
_NULL_TYPES = {"numeric": "DOUBLE", "temporal": "TIMESTAMP", "boolean": "BOOLEAN"}


def column_kind(dtype: pa.DataType) -> str:
    """Return how a column of Arrow type ``dtype`` is profiled: one of :data:`KINDS`.

    Example:
        >>> column_kind(pa.float64()), column_kind(pa.string()), column_kind(pa.date32())
        ('numeric', 'categorical', 'temporal')
    """
    if pa.types.is_dictionary(dtype):
        return column_kind(dtype.value_type)
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "temporal"
    strings = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    return "categorical" if any(check(dtype) for check in strings) else "other"


def sql_float(value: float) -> str:
    """Return a DuckDB DOUBLE literal that round-trips ``value`` exactly.

    Example:
        >>> sql_float(0.1)
        '0.1::DOUBLE'
    """
    return f"{float(value)!r}::DOUBLE"


def json_value(value: Any) -> Any:
    """Return ``value`` as a plain JSON type: NaN and infinities become ``None``.

    Example:
        >>> json_value(float("nan")), json_value(Decimal("1.5")), json_value(date(2024, 1, 2))
        (None, 1.5, '2024-01-02')
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return json_value(value.item())
    return str(value)


@dataclass(frozen=True)
class SourceColumn:
    """One column of a registered source: its name, Arrow type, kind and SQL alias.

    ``finite_only`` marks a float column holding NaN or infinities: its :attr:`value` then
    turns them into NULL, so statistics and histograms cover finite values only.
    """

    name: str
    type: pa.DataType
    kind: str
    alias: str
    finite_only: bool = False

    @property
    def value(self) -> str:
        """SQL of the column's profiled values."""
        if self.finite_only:
            return f"(CASE WHEN isfinite({self.alias}) THEN {self.alias} END)"
        return self.alias

    @property
    def point(self) -> str:
        """SQL of the column on the axis its histogram bins: a double, epoch seconds for time."""
        if self.kind == "temporal":
            return f"epoch({self.value})"
        return f"CAST({self.value} AS DOUBLE)"

    def finite(self) -> SourceColumn:
        """Return this column with NaN and infinities left out of its values."""
        return replace(self, finite_only=True)


@contextlib.contextmanager
def open_source(
    data: Any, view: str = "src"
) -> Iterator[tuple[duckdb.DuckDBPyConnection, list[SourceColumn]]]:
    """Open a DuckDB connection with ``data`` (Arrow table or dataset) as view ``view``.

    The view names each column by a safe alias (see :class:`SourceColumn`).

    Example:
        >>> with open_source(pa.table({"a": [1.0, float("nan")]})) as (con, cols):
        ...     con.execute(f"SELECT count({cols[0].finite().value}) FROM src").fetchone()
        (1,)
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        schema, relation = _register(con, data)
        columns = [
            SourceColumn(f.name, f.type, column_kind(f.type), f"c{i}") for i, f in enumerate(schema)
        ]
        nulls = {c.name: f"CAST(NULL AS {_NULL_TYPES.get(c.kind, 'VARCHAR')})" for c in columns}
        body = ", ".join(f"{relation[c.name] or nulls[c.name]} AS {c.alias}" for c in columns)
        con.execute(f"CREATE VIEW {view} AS SELECT {body} FROM {relation['__from__']}")
        yield con, columns
    finally:
        con.close()


def _register(con: duckdb.DuckDBPyConnection, data: Any) -> tuple[pa.Schema, dict[str, str]]:
    """Make ``data`` readable by ``con``; return its schema and each column's SQL source."""
    import pyarrow.dataset as ds

    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table | ds.Dataset):
        raise TypeError(f"Cannot profile a {type(data).__name__}; pass an Arrow table or dataset.")
    schema = data.schema
    if isinstance(data, pa.Table):
        for i, field in enumerate(schema):
            if pa.types.is_float16(field.type):  # DuckDB reads no half floats
                data = data.set_column(i, field.name, data.column(i).cast(pa.float32()))
    elif files := local_parquet_files(data):
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(
            f"CREATE VIEW parquet_source AS SELECT * FROM read_parquet([{listed}], "
            "union_by_name = true)"
        )
        present = {row[0] for row in con.execute("DESCRIBE parquet_source").fetchall()}
        # Columns no file has yet (added by a later schema evolution) read as NULL.
        names = {n: quote(n) if n in present else "" for n in schema.names}
        return schema, {"__from__": "parquet_source", **names}
    con.register("arrow_source", data)
    return schema, {"__from__": "arrow_source", **{n: quote(n) for n in schema.names}}


def compute_profile(data: Any, *, bins: int = 20, top: int = 20) -> dict[str, Any]:
    """Return the profile of ``data`` (an Arrow table or dataset) as plain JSON.

    ``bins`` sets the histogram bins of numeric and temporal columns, ``top`` how many most
    frequent values string and boolean columns list.

    Example:
        >>> p = compute_profile(pa.table({"x": [1.0, 2.0, None], "s": ["a", "b", "a"]}))
        >>> p["row_count"], p["columns"]["x"]["nulls"], p["columns"]["s"]["top"][0]
        (3, 1, {'value': 'a', 'count': 2})
    """
    if bins < 1 or top < 0:
        raise ValueError("bins must be at least 1 and top at least 0")
    if not len(data.schema):  # nothing DuckDB could scan
        rows = data.num_rows if isinstance(data, pa.Table | pa.RecordBatch) else data.count_rows()
        return {"row_count": int(rows), "columns": {}}
    with open_source(data) as (con, columns):
        row_count, stats, columns = _first_pass(con, columns)
        _second_pass(con, columns, stats, bins)
        _quantiles(con, columns, stats, row_count)
        for col in columns:
            if col.kind == "categorical":
                stats[col.name].update(_top_values(con, col, stats[col.name]["count"], top))
            elif col.kind == "boolean":
                stats[col.name].update(_boolean_top(stats[col.name], top))
    out: dict[str, Any] = {}
    for col in columns:
        entry = stats[col.name]
        entry.pop("_true", None)
        entry = {**{k: entry.pop(k) for k in _LEADING}, **entry}
        out[col.name] = {
            k: json_value(v) if not isinstance(v, dict | list) else v for k, v in entry.items()
        }
    return {"row_count": int(row_count), "columns": out}


def _first_pass(
    con: duckdb.DuckDBPyConnection, columns: list[SourceColumn]
) -> tuple[int, dict[str, dict[str, Any]], list[SourceColumn]]:
    """Counts, distinct values, extremes and means of every column in one aggregate query.

    Float columns are aggregated as stored, which is cheapest; one whose extremes show NaN or
    infinities (DuckDB sorts NaN above every number) is aggregated again over finite values,
    and returned marked ``finite_only`` for the later passes.
    """
    layout, exprs = _stat_exprs(columns)
    row = con.execute("SELECT " + ", ".join(["count(*)", *exprs]) + " FROM src").fetchone()
    assert row is not None
    row_count = int(row[0])
    stats: dict[str, dict[str, Any]] = {
        c.name: {"type": str(c.type), "kind": c.kind} for c in columns
    }
    for (name, key), value in zip(layout, row[1:], strict=True):
        stats[name][key] = value
    guarded = [c.finite() for c in columns if _non_finite(c, stats[c.name])]
    if guarded:
        layout, exprs = _stat_exprs(guarded, counts=False)
        again = con.execute("SELECT " + ", ".join(exprs) + " FROM src").fetchone()
        assert again is not None
        for (name, key), value in zip(layout, again, strict=True):
            stats[name][key] = value
        for col in guarded:
            entry = stats[col.name]
            entry["non_finite"] = int(entry["count"]) - int(entry.pop("_finite"))
        swap = {c.name: c for c in guarded}
        columns = [swap.get(c.name, c) for c in columns]
    for col in columns:
        entry = stats[col.name]
        count = int(entry["count"])
        entry["count"] = count
        entry["nulls"] = row_count - count
        entry["null_fraction"] = (row_count - count) / row_count if row_count else 0.0
        entry.setdefault("distinct", None)
        if pa.types.is_floating(col.type):
            entry.setdefault("non_finite", 0)
        if col.kind == "boolean":
            true = int(entry["_true"] or 0)
            entry["distinct"] = int(true > 0) + int(count - true > 0)
        if col.kind == "temporal":
            entry["min"] = _iso(entry["min"])
            entry["max"] = _iso(entry["max"])
        elif col.kind == "numeric":
            entry["_lo"], entry["_hi"] = entry["min"], entry["max"]
    return row_count, stats, columns


def _stat_exprs(
    columns: list[SourceColumn], counts: bool = True
) -> tuple[list[tuple[str, str]], list[str]]:
    """The first pass's aggregates: ``(column, key)`` pairs and their SQL, in order."""
    layout: list[tuple[str, str]] = []
    exprs: list[str] = []
    for col in columns:
        fields = []
        if counts:
            fields.append(("count", f"count({col.alias})"))
        else:
            fields.append(("_finite", f"count({col.value})"))
        if col.kind in ("numeric", "temporal", "categorical"):
            fields.append(("distinct", f"approx_count_distinct({col.value})"))
        if col.kind in ("numeric", "temporal"):
            fields += [("min", f"min({col.value})"), ("max", f"max({col.value})")]
        if col.kind == "temporal":
            fields += [("_lo", f"epoch(min({col.value}))"), ("_hi", f"epoch(max({col.value}))")]
        if col.kind == "numeric":
            fields.append(("mean", f"avg({col.point})"))
        if col.kind == "boolean" and counts:
            fields.append(("_true", f"count_if({col.value})"))
        for key, expr in fields:
            layout.append((col.name, key))
            exprs.append(expr)
    return layout, exprs


def _non_finite(col: SourceColumn, entry: dict[str, Any]) -> bool:
    """Whether a float column's extremes show NaN or infinite values."""
    if not pa.types.is_floating(col.type) or entry.get("min") is None:
        return False
    return not (math.isfinite(float(entry["min"])) and math.isfinite(float(entry["max"])))


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime | date) else None


def _second_pass(
    con: duckdb.DuckDBPyConnection,
    columns: list[SourceColumn],
    stats: dict[str, dict[str, Any]],
    bins: int,
) -> None:
    """Histograms of numeric and temporal columns, and spreads around the first pass's means."""
    exprs: list[str] = []
    layout: list[tuple[str, str]] = []
    for col in (c for c in columns if c.kind in ("numeric", "temporal")):
        entry = stats[col.name]
        lo, hi = (None if v is None else float(v) for v in (entry.pop("_lo"), entry.pop("_hi")))
        if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
            entry["histogram"] = {"edges": [], "counts": []}
        elif hi <= lo:
            finite = entry["count"] - entry.get("non_finite", 0)
            entry["histogram"] = {"edges": [lo, hi], "counts": [finite]}
        else:
            width = (hi - lo) / bins  # the same arithmetic as histogram_sql's bins
            edges = [lo + i * width for i in range(bins)] + [hi]
            entry["histogram"] = {"edges": edges, "counts": [0] * bins}
            layout.append((col.name, "histogram"))
            exprs.append(histogram_sql(col.point, lo, hi, bins))
        mean = entry.get("mean")
        if col.kind == "numeric" and mean is not None and math.isfinite(float(mean)):
            layout.append((col.name, "_ssd"))
            deviation = f"({col.point} - {sql_float(mean)})"
            exprs.append(f"sum({deviation} * {deviation})")
    row = con.execute("SELECT " + ", ".join(exprs) + " FROM src").fetchone() if exprs else ()
    for (name, key), value in zip(layout, row or (), strict=True):
        if key == "histogram":
            stats[name]["histogram"]["counts"] = fold_histogram(value, bins)
        else:
            stats[name]["_ssd"] = value
    for col in (c for c in columns if c.kind == "numeric"):
        entry = stats[col.name]
        ssd, n = entry.pop("_ssd", None), entry["count"] - entry.get("non_finite", 0)
        entry["std"] = (
            math.sqrt(max(float(ssd), 0.0) / (n - 1)) if ssd is not None and n > 1 else None
        )


def histogram_sql(point: str, lo: float, hi: float, bins: int, *, clamp: bool = False) -> str:
    """Return a DuckDB aggregate mapping each 0-based bin of [lo, hi] to its count of ``point``.

    NULLs are not counted. Unclamped (twice as fast) for values known to lie in [lo, hi]:
    ``hi`` maps to bin ``bins``, which :func:`fold_histogram` puts last. With ``clamp``,
    values below ``lo`` fall in the first bin and values above ``hi`` in the last.

    Example:
        >>> histogram_sql("x", 0.0, 10.0, 5)
        'histogram(CAST(floor((x - 0.0::DOUBLE) / 2.0::DOUBLE) AS INTEGER))'
    """
    bucket = f"floor(({point} - {sql_float(lo)}) / {sql_float((hi - lo) / bins)})"
    if not clamp:
        return f"histogram(CAST({bucket} AS INTEGER))"
    # least/greatest skip NULL arguments, so NULLs are filtered out rather than binned.
    bucket = f"CAST(least({bins - 1}, greatest(0, {bucket})) AS INTEGER)"
    return f"histogram({bucket}) FILTER (WHERE {point} IS NOT NULL)"


def fold_histogram(mapping: dict[Any, Any] | None, bins: int) -> list[int]:
    """Return the counts of ``bins`` bins from a bin-to-count map, clamping stray bins to the ends.

    Example:
        >>> fold_histogram({0: 2, 3: 1, 4: 1}, 4)
        [2, 0, 0, 2]
    """
    counts = [0] * bins
    for bucket, n in (mapping or {}).items():
        counts[min(max(int(bucket), 0), bins - 1)] += int(n)
    return counts


def _quantiles(
    con: duckdb.DuckDBPyConnection,
    columns: list[SourceColumn],
    stats: dict[str, dict[str, Any]],
    row_count: int,
) -> None:
    """Quantiles of numeric columns: exact on small tables, from a row sample on large ones."""
    numeric = [c for c in columns if c.kind == "numeric"]
    for col in numeric:
        stats[col.name]["quantiles"] = {str(q): None for q in QUANTILES}
    wanted = [c for c in numeric if stats[c.name]["histogram"]["counts"]]
    if not wanted:
        return
    qs = "[" + ", ".join(repr(q) for q in QUANTILES) + "]"
    source = "src"
    if row_count > QUANTILE_SAMPLE_ROWS:
        # A Bernoulli sample (each row kept independently) is uniform and cheaper to draw
        # than a fixed-size reservoir; it holds QUANTILE_SAMPLE_ROWS rows on average.
        picked = ", ".join(c.alias for c in wanted)
        percent = 100.0 * QUANTILE_SAMPLE_ROWS / row_count
        source = f"(SELECT {picked} FROM src USING SAMPLE {percent!r} PERCENT (bernoulli, 7))"
    exprs = [f"quantile_cont({c.point}, {qs})" for c in wanted]
    row = con.execute("SELECT " + ", ".join(exprs) + f" FROM {source}").fetchone()
    assert row is not None
    for col, values in zip(wanted, row, strict=True):
        if values is None:
            continue
        stats[col.name]["quantiles"] = {
            str(q): json_value(v) for q, v in zip(QUANTILES, values, strict=True)
        }


def _top_values(
    con: duckdb.DuckDBPyConnection, col: SourceColumn, count: int, top: int
) -> dict[str, Any]:
    """The ``top`` most frequent values of a string column, ties by value, and the rest."""
    rows: list[tuple[Any, int]] = []
    if count and top:
        rows = con.execute(
            f"SELECT {col.value} AS v, count(*) AS n FROM src WHERE {col.value} IS NOT NULL "
            f"GROUP BY {col.value} ORDER BY n DESC, v LIMIT {int(top)}"
        ).fetchall()
    return _top_result(rows, count)


def _top_result(rows: list[tuple[Any, int]], count: int) -> dict[str, Any]:
    values = [{"value": v, "count": int(n)} for v, n in rows]
    return {"top": values, "other_count": count - sum(v["count"] for v in values)}


def _boolean_top(entry: dict[str, Any], top: int) -> dict[str, Any]:
    """Top values of a boolean column, from the counts of the first pass."""
    true = int(entry.get("_true") or 0)
    false = entry["count"] - true
    pairs = sorted(((v, n) for v, n in ((False, false), (True, true)) if n), key=lambda p: -p[1])
    return _top_result(pairs[:top], entry["count"])


# -- stored profiles -------------------------------------------------------------------------


def profile_version(lake: Lake, table: str, version: int) -> dict[str, Any]:
    """Return the profile of ``table`` at ``version``, computing and storing it if missing.

    Columns the table's contract marks as personal data are withheld before the profile is
    stored (see :func:`plinth.quality.privacy.sanitize_profile`). Idempotent: a stored
    profile is returned as :func:`get_profile` reads it. Raises ``TableNotFoundError`` or
    ``VersionNotFoundError`` for an unknown table or version.

    Example:
        >>> # profile_version(ws.lake, "flights", 0)["columns"]["dep_delay"]["mean"]
    """
    from sqlalchemy.exc import IntegrityError as SqlIntegrityError

    from plinth.catalog.models import Profile
    from plinth.quality.privacy import sanitize_profile, table_pii

    stored = get_profile(lake.catalog, table, version)
    if stored is not None:
        return stored
    info = lake.version(table, version)
    profile = compute_profile(lake.scan(table, info.version))
    profile = sanitize_profile(profile, table_pii(lake.catalog, table))
    row = Profile(table_name=table, version=info.version, created_at=utcnow(), **profile)
    # Another process may store the same profile first; theirs is read back below.
    with contextlib.suppress(SqlIntegrityError), lake.catalog.session() as session:
        session.add(row)
    stored = get_profile(lake.catalog, table, version)
    assert stored is not None
    return stored


def get_profile(catalog: Catalog, table: str, version: int) -> dict[str, Any] | None:
    """Return the stored profile of ``table`` at ``version``, or ``None`` if there is none.

    The result has ``table``, ``version``, ``row_count``, ``columns`` and ``created_at``.
    Columns the table's current contract marks as personal data are withheld, even in a
    profile stored before they were marked.

    Example:
        >>> # get_profile(ws.catalog, "flights", 0) is None
    """
    from sqlalchemy import select

    from plinth.catalog.models import Profile
    from plinth.quality.privacy import sanitize_profile, table_pii

    with catalog.session() as session:
        row = session.scalar(
            select(Profile).where(Profile.table_name == table, Profile.version == version)
        )
        if row is None:
            return None
        found = dict(
            table=row.table_name,
            version=row.version,
            row_count=int(row.row_count),
            columns=dict(row.columns),
            created_at=row.created_at.isoformat(),
        )
    return sanitize_profile(found, table_pii(catalog, table))
