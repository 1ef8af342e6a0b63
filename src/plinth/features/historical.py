"""Point-in-time correct training sets: for each spine row, each view's latest row at or
before the row's event time (and within the view's TTL), joined out of core in DuckDB.

Ties on the event time are broken by the view's ``created_timestamp`` (newest first), then
by the feature values themselves, so the answer never depends on file or thread order. The
output has exactly the spine's rows, in the spine's order.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from plinth._core.clock import utcnow
from plinth._core.ids import new_id
from plinth._core.sql import quote
from plinth.catalog import audit
from plinth.catalog.lineage import Node, add_edge
from plinth.catalog.models import TrainingSet
from plinth.errors import SchemaMismatchError, SourceError
from plinth.features.registry import Selection, resolve
from plinth.lake import duck

if TYPE_CHECKING:
    import duckdb

    from plinth.features.definitions import FeatureService
    from plinth.workspace import Workspace

ROW = "__plinth_row"
EVENT = "__plinth_event"


@dataclass(frozen=True)
class TrainingSetResult:
    """A point-in-time training set: the data, and its record in the catalog (if recorded)."""

    table: pa.Table
    id: str | None
    features: list[str]
    inputs: dict[str, Any]

    def to_pandas(self) -> Any:
        """The training set as a pandas DataFrame."""
        return self.table.to_pandas()

    @property
    def ref(self) -> str | None:
        """The training set's reference for lineage and run inputs, ``training_set:<id>``."""
        return f"training_set:{self.id}" if self.id else None


def feature_column(view: str, feature: str) -> str:
    """The output column of a feature: ``view__feature``.

    Example:
        >>> feature_column("weather", "temp")
        'weather__temp'
    """
    return f"{view}__{feature}"


def _spine_table(ws: Workspace, spine: Any) -> tuple[pa.Table, dict[str, Any]]:
    if isinstance(spine, str):
        name, _, version = spine.partition("@")
        info = ws.lake.version(name, int(version) if version else None)
        return ws.lake.read(name, info.version), {"table": name, "version": info.version}
    if isinstance(spine, pa.Table):
        return spine, {"kind": "arrow"}
    if type(spine).__module__.startswith("pandas"):
        return pa.Table.from_pandas(spine, preserve_index=False), {"kind": "pandas"}
    if type(spine).__module__.startswith("polars"):
        return spine.to_arrow(), {"kind": "polars"}
    raise SourceError(
        f"Cannot use an object of type {type(spine).__name__} as a spine.",
        hint="Pass a pandas/polars DataFrame, an Arrow table, or a lake table name 'table@N'.",
    )


def _check_spine(spine: pa.Table, timestamp: str, selections: Sequence[Selection]) -> pa.Table:
    if timestamp not in spine.column_names:
        raise SchemaMismatchError(
            f"The spine has no event-time column '{timestamp}'.",
            hint=f"Its columns are: {', '.join(spine.column_names)}; pass timestamp=COLUMN.",
        )
    dtype = spine.schema.field(timestamp).type
    if pa.types.is_date(dtype):
        spine = spine.set_column(
            spine.schema.get_field_index(timestamp),
            timestamp,
            spine.column(timestamp).cast(pa.timestamp("us")),
        )
    elif not pa.types.is_timestamp(dtype):
        raise SchemaMismatchError(
            f"The spine's event-time column '{timestamp}' is {dtype}, not a timestamp.",
            hint="Convert it to a timestamp (with a time zone, like the lake's tables).",
        )
    for selection in selections:
        missing = [k for k in selection.view.join_keys if k not in spine.column_names]
        if missing:
            raise SchemaMismatchError(
                f"The spine lacks join key(s) {', '.join(missing)} of feature view "
                f"'{selection.view.name}'.",
                hint=f"The spine's columns are: {', '.join(spine.column_names)}.",
            )
    return spine


def _check_types(spine: pa.Table, label: str, view: Any, source: pa.Schema) -> None:
    """Refuse join keys and event times the join would compare wrongly.

    ``label`` is the name of the spine's own event-time column, so messages name what the
    user wrote rather than the working column.
    """
    for key in view.join_keys:
        left, right = spine.schema.field(key).type, source.field(key).type
        numeric = pa.types.is_integer(left) and pa.types.is_integer(right)
        texts = all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in (left, right))
        if left != right and not numeric and not texts:
            raise SchemaMismatchError(
                f"Join key '{key}' is {left} in the spine but {right} in '{view.source}' "
                f"(feature view '{view.name}').",
                hint="Cast the spine's column to the source's type.",
            )
    if view.timestamp is None:
        return
    spine_tz = spine.schema.field(EVENT).type.tz
    source_type = source.field(view.timestamp).type
    source_tz = getattr(source_type, "tz", None)
    if (spine_tz is None) != (source_tz is None):
        raise SchemaMismatchError(
            f"The spine's '{label}' is {'naive' if spine_tz is None else 'time-zone aware'} "
            f"but '{view.source}.{view.timestamp}' is "
            f"{'naive' if source_tz is None else 'time-zone aware'}; comparing them would shift "
            "times by the local offset.",
            hint="Make both time-zone aware (UTC), e.g. df[col].dt.tz_localize('UTC').",
        )


def _interval(ttl: timedelta) -> str:
    micros = ttl // timedelta(microseconds=1)
    return f"INTERVAL '{micros} microseconds'"


def _view_sql(selection: Selection, *, bounded: bool) -> str:
    """The point-in-time join of one view, its features aliased ``__f0``, ``__f1``...

    Internal aliases keep the tie-break on feature values even when a feature is named like
    a source column. ``bounded`` is false when the spine has no event time at all.
    """
    view = selection.view
    keys = [quote(k) for k in view.join_keys]
    names = [f"__f{i}" for i in range(len(selection.features))]
    exprs = [f"({view.features[f]}) AS {n}" for f, n in zip(selection.features, names, strict=True)]
    created = f"{quote(view.created_timestamp)}" if view.created_timestamp else "NULL"
    tiebreak = ", ".join(["__created DESC NULLS LAST", *[f"{n} ASC NULLS LAST" for n in names]])
    if view.timestamp is None:
        source = (
            f"SELECT {', '.join(keys)}, {created} AS __created, {', '.join(exprs)} FROM src "
            f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {tiebreak}) = 1"
        )
        on = " AND ".join(f"s.{k} = f.{k}" for k in keys)
        columns = ", ".join(f"f.{n}" for n in names)
        return (
            f"WITH f AS ({source}) SELECT s.{ROW}, {columns} FROM spine s "
            f"LEFT JOIN f ON {on} ORDER BY s.{ROW}"
        )
    ts = quote(view.timestamp)
    if not bounded:
        window = ["FALSE"]
    else:
        window = [f"{ts} <= $max"]
        if view.ttl is not None:
            window.append(f"{ts} >= $min - {_interval(view.ttl)}")
    source = (
        f"SELECT {', '.join(keys)}, {ts} AS __ts, {created} AS __created, {', '.join(exprs)} "
        f"FROM src WHERE {ts} IS NOT NULL AND {' AND '.join(window)} "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)}, {ts} "
        f"ORDER BY {tiebreak}) = 1"
    )
    on = " AND ".join([*(f"s.{k} = f.{k}" for k in keys), f"s.{EVENT} >= f.__ts"])
    if view.ttl is None:
        columns = ", ".join(f"f.{n}" for n in names)
    else:
        limit = _interval(view.ttl)
        columns = ", ".join(
            f"CASE WHEN s.{EVENT} - f.__ts <= {limit} THEN f.{n} END AS {n}" for n in names
        )
    return (
        f"WITH f AS ({source}) SELECT s.{ROW}, {columns} FROM spine s "
        f"ASOF LEFT JOIN f ON {on} ORDER BY s.{ROW}"
    )


def _join_view(
    ws: Workspace,
    connection: duckdb.DuckDBPyConnection,
    spine: pa.Table,
    timestamp: str,
    selection: Selection,
) -> tuple[list[pa.ChunkedArray], dict[str, Any]]:
    view = selection.view
    info = ws.lake.version(view.source)
    dataset = ws.lake.scan(view.source, info.version)
    _check_types(spine, timestamp, view, dataset.schema)
    duck.register(connection, "src", dataset)
    try:
        event = spine.column(EVENT)
        params = {"min": _scalar(event, "min"), "max": _scalar(event, "max")}
        sql = _view_sql(selection, bounded=params["max"] is not None)
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        result = connection.sql(sql, params=used).to_arrow_table()
    finally:
        duck.unregister(connection, "src")
    if result.num_rows != spine.num_rows:
        raise AssertionError(
            f"point-in-time join of '{view.name}' returned {result.num_rows} rows for a spine "
            f"of {spine.num_rows}"
        )
    columns = [result.column(f"__f{i}") for i in range(len(selection.features))]
    return columns, {"table": view.source, "version": info.version}


def _event_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The spine's event times at microseconds, the lake's precision.

    Flooring a finer time to microseconds keeps ``source_time <= event`` exact, because
    Delta stores every timestamp at microseconds.
    """
    dtype = column.type
    if dtype.unit == "us":
        return column
    return column.cast(pa.timestamp("us", dtype.tz), safe=False)


def _scalar(column: pa.ChunkedArray, how: str) -> Any:
    import pyarrow.compute as pc

    return (pc.min if how == "min" else pc.max)(column).as_py()


def historical(
    ws: Workspace,
    spine: Any,
    features: FeatureService | str | Sequence[str],
    *,
    timestamp: str = "event_timestamp",
    record: bool = True,
) -> TrainingSetResult:
    """Build a point-in-time correct training set (see the module docstring).

    Example:
        >>> # ws.features.historical(flights, "delay", timestamp="time_hour")
    """
    import duckdb

    selections = resolve(ws, features)
    spine_table, spine_info = _spine_table(ws, spine)
    spine_table = _check_spine(spine_table, timestamp, selections)
    n = spine_table.num_rows
    keys = sorted({k for s in selections for k in s.view.join_keys})
    working = pa.table(
        {
            ROW: pa.array(range(n), type=pa.int64()),
            EVENT: _event_column(spine_table.column(timestamp)),
            **{k: spine_table.column(k) for k in keys},
        }
    )
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("spine", working)
    out = spine_table
    names: list[str] = []
    inputs: dict[str, Any] = {"tables": {}, "views": {}}
    try:
        for selection in selections:
            columns, source = _join_view(ws, connection, working, timestamp, selection)
            inputs["tables"][source["table"]] = source["version"]
            inputs["views"][selection.view.name] = selection.version
            for feature, column in zip(selection.features, columns, strict=True):
                name = feature_column(selection.view.name, feature)
                if name in out.column_names:
                    raise SchemaMismatchError(f"The spine already has a column '{name}'.")
                out = out.append_column(name, column)
                names.append(name)
    finally:
        connection.close()
    training_set_id = _record(ws, out, names, spine_info, inputs) if record else None
    return TrainingSetResult(out, training_set_id, names, inputs)


def _record(
    ws: Workspace,
    table: pa.Table,
    names: list[str],
    spine: dict[str, Any],
    inputs: dict[str, Any],
) -> str:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    ref = ws.artifacts.put_bytes(buffer.getvalue())
    training_set_id = new_id("ts_")
    target = Node("training_set", training_set_id)
    with ws.catalog.session() as session:
        session.add(
            TrainingSet(
                id=training_set_id,
                features=names,
                spine={**spine, "rows": table.num_rows, "columns": table.column_names},
                inputs=inputs,
                row_count=table.num_rows,
                artifact_digest=ref.digest,
                created_at=utcnow(),
                created_by=ws.settings.user,
            )
        )
        for name, version in inputs["tables"].items():
            add_edge(session, Node("table_version", f"{name}@{version}"), target, "read_by")
        for name, version in inputs["views"].items():
            add_edge(session, Node("feature_view", f"{name}@{version}"), target, "computed")
        if "table" in spine:
            spine_node = Node("table_version", f"{spine['table']}@{spine['version']}")
            add_edge(session, spine_node, target, "spine_of")
        audit.record(
            session,
            actor=ws.settings.user,
            action="training_set.create",
            resource=f"training_set:{training_set_id}",
            details={
                "rows": table.num_rows,
                "features": names,
                "tables": inputs["tables"],
                "views": inputs["views"],
                "artifact": ref.digest,
            },
        )
    return training_set_id
