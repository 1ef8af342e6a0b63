"""The feature store of a workspace: apply definitions, build training sets, materialize to
the online store, read online values, and check training/serving skew.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import func, select

from plinth._core.clock import as_utc, utcnow
from plinth._core.sql import quote
from plinth._core.urls import redact_url
from plinth.catalog.models import Materialization
from plinth.errors import NotFoundError, SchemaMismatchError
from plinth.features import registry
from plinth.features.definitions import (
    Definition,
    FeatureService,
    FeatureView,
    collect,
    load_module,
)
from plinth.features.historical import TrainingSetResult, feature_column, historical
from plinth.lake import duck

if TYPE_CHECKING:
    from plinth.features.online.base import OnlineStore
    from plinth.workspace import Workspace


@dataclass(frozen=True)
class FeatureViewInfo:
    """An applied feature view: its newest version, definition and materialization watermark.

    Example:
        >>> info = FeatureViewInfo("weather", 2, {"source": "weather", "features": {}}, None)
        >>> info.to_dict()["version"]
        2
    """

    name: str
    version: int
    spec: dict[str, Any]
    watermark: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The view as the API answers it: name, version, watermark and the definition."""
        return {"name": self.name, "version": self.version, "watermark": self.watermark,
                **{k: v for k, v in self.spec.items() if k != "name"}}  # fmt: skip


@dataclass(frozen=True)
class MaterializeResult:
    """What one materialization wrote."""

    view: str
    rows: int
    start: datetime | None
    end: datetime
    table_version: int


@dataclass(frozen=True)
class OnlineResult:
    """Online values for a list of entities: one dict of values and one of statuses per entity."""

    values: list[dict[str, Any]]
    statuses: list[dict[str, str]]

    def to_arrow(self) -> pa.Table:
        """The values as an Arrow table, one row per requested entity."""
        return pa.Table.from_pylist(self.values)


@dataclass
class SkewReport:
    """Training/serving skew of one view: online values against point-in-time values."""

    view: str
    checked: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)


class Features:
    """Feature definitions, training sets and online serving of one workspace.

    Example:
        >>> # ws.features.apply("features.py"); ws.features.historical(spine, "delay")
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    @cached_property
    def online_store(self) -> OnlineStore:
        """The online store under ``PLINTH_ONLINE_URL``."""
        from plinth.features.online import open_online_store

        return open_online_store(self.ws.settings.online_store_url)

    # -- definitions -----------------------------------------------------------------------

    def apply(
        self,
        definitions: str | Path | Sequence[Any] | None = None,
        *,
        actor: str | None = None,
    ) -> list[registry.Change]:
        """Lint and record definitions: objects, or a Python file (default ``features.py``).

        ``actor`` is who the catalog and the audit chain name (default: the workspace user).

        Example:
            >>> # [c.status for c in ws.features.apply("features.py")]
        """
        if definitions is None or isinstance(definitions, str | Path):
            found = load_module(definitions or "features.py")
        else:
            found = collect(definitions)
        return registry.apply(self.ws, found, actor=actor)

    def views(self) -> dict[str, tuple[FeatureView, int]]:
        """The newest version of every applied feature view."""
        return registry.latest_views(self.ws)

    def definitions(self) -> list[tuple[str, Definition, int]]:
        """Every applied definition, newest versions: (kind, definition, version)."""
        out: list[tuple[str, Definition, int]] = []
        for kind, found in (
            ("entity", registry.latest_entities(self.ws)),
            ("view", registry.latest_views(self.ws)),
            ("service", registry.latest_services(self.ws)),
        ):
            out.extend((kind, d, v) for d, v in found.values())
        return out

    def view_infos(self) -> list[FeatureViewInfo]:
        """Every applied feature view with its version and watermark, by name.

        Example:
            >>> # [v.name for v in ws.features.view_infos()]
        """
        return [
            FeatureViewInfo(name, version, view.spec(), self.watermark(name))
            for name, (view, version) in sorted(self.views().items())
        ]

    def view_info(self, name: str) -> FeatureViewInfo:
        """One applied feature view with its version and watermark (NotFoundError if unknown).

        Example:
            >>> # ws.features.view_info("weather").watermark
        """
        view, version = self.view(name)
        return FeatureViewInfo(name, version, view.spec(), self.watermark(name))

    def view(self, name: str) -> tuple[FeatureView, int]:
        """One applied feature view and its version."""
        views = self.views()
        if name not in views:
            raise NotFoundError(
                f"Unknown feature view '{name}'.",
                hint="Run 'plinth features list' to see the applied views.",
            )
        return views[name]

    # -- offline ---------------------------------------------------------------------------

    def historical(
        self,
        spine: Any,
        features: FeatureService | str | Sequence[str],
        *,
        timestamp: str = "event_timestamp",
        record: bool = True,
    ) -> TrainingSetResult:
        """Point-in-time correct training set (see :mod:`plinth.features.historical`)."""
        return historical(self.ws, spine, features, timestamp=timestamp, record=record)

    def training_set(self, training_set_id: str) -> TrainingSetResult:
        """Load a recorded training set by id (``ts_...`` or ``training_set:ts_...``).

        The stored Parquet artifact is read back with its hash verified.

        Example:
            >>> # ws.features.training_set("ts_01H...").table.num_rows
        """
        import io

        import pyarrow.parquet as pq

        from plinth.catalog.models import TrainingSet

        key = training_set_id.removeprefix("training_set:")
        with self.ws.catalog.session() as session:
            record = session.get(TrainingSet, key)
            if record is None:
                raise NotFoundError(
                    f"No training set '{key}' is in the catalog.",
                    hint="Build one with ws.features.historical(spine, service).",
                )
            features, inputs, digest = (
                list(record.features),
                dict(record.inputs),
                record.artifact_digest,
            )
        table = pq.read_table(io.BytesIO(self.ws.artifacts.get_bytes(digest)))
        return TrainingSetResult(table, key, features, inputs)

    # -- online ----------------------------------------------------------------------------

    def watermark(self, view: str) -> datetime | None:
        """The end of the newest materialization of a view, or ``None``."""
        with self.ws.catalog.session() as session:
            return session.scalar(
                select(func.max(Materialization.end)).where(Materialization.view_name == view)
            )

    def materialize(
        self,
        view: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> MaterializeResult:
        """Write each entity's latest values in ``(start, end]`` to the online store.

        Without ``start`` the run continues from the view's watermark (the previous run's end),
        so repeated runs are incremental; without ``end`` it runs up to now.
        """
        import duckdb

        definition, version = self.view(view)
        end = as_utc(end) if end else utcnow()
        start = as_utc(start) if start else self.watermark(view)
        info = self.ws.lake.version(definition.source)
        dataset = self.ws.lake.scan(definition.source, info.version)
        sql = _latest_sql(definition, start is not None)
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        duck.register(connection, "src", dataset)
        try:
            params = {"end": end, **({"start": start} if start is not None else {})}
            if definition.timestamp is None:
                params = {}
            data = connection.sql(sql, params=params).to_arrow_table()
        finally:
            connection.close()
        rows = self.online_store.write(
            definition.name, list(definition.join_keys), data, timestamp="__ts"
        )
        with self.ws.catalog.session() as session:
            session.add(
                Materialization(
                    view_name=definition.name,
                    view_version=version,
                    table_version=info.version,
                    start=start,
                    end=end,
                    rows=rows,
                    online_url=redact_url(self.ws.settings.online_store_url),
                    created_at=utcnow(),
                )
            )
        return MaterializeResult(definition.name, rows, start, end, info.version)

    def online(
        self,
        entities: Sequence[Mapping[str, Any]] | pa.Table,
        features: FeatureService | str | Sequence[str],
        *,
        now: datetime | None = None,
    ) -> OnlineResult:
        """Read the online values of ``features`` for each entity (TTL enforced on read).

        Example:
            >>> # ws.features.online([{"origin": "JFK", "tailnum": "N14228"}], "delay")
        """
        rows = entities.to_pylist() if isinstance(entities, pa.Table) else list(entities)
        selections = registry.resolve(self.ws, features)
        values: list[dict[str, Any]] = [{} for _ in rows]
        statuses: list[dict[str, str]] = [{} for _ in rows]
        for selection in selections:
            view = selection.view
            missing = [k for k in view.join_keys if rows and k not in rows[0]]
            if missing:
                raise SchemaMismatchError(
                    f"The entities lack join key(s) {', '.join(missing)} of feature view "
                    f"'{view.name}'."
                )
            keys = [tuple(row[k] for k in view.join_keys) for row in rows]
            found = self.online_store.read(
                view.name, keys, list(selection.features), ttl=view.ttl, now=now
            )
            for i, item in enumerate(found):
                for feature in selection.features:
                    name = feature_column(view.name, feature)
                    values[i][name] = item.values.get(feature)
                    statuses[i][name] = item.statuses.get(feature, "missing")
        return OnlineResult(values, statuses)

    def skew(self, view: str, sample: int = 1000) -> SkewReport:
        """Compare online values with point-in-time values at the same instants.

        For a sample of entities, the instant is the event time the online store holds for
        the entity; the historical value at that instant must be the same row.
        """
        import duckdb

        definition, _ = self.view(view)
        info = self.ws.lake.version(definition.source)
        keys = ", ".join(quote(k) for k in definition.join_keys)
        connection = duckdb.connect()
        duck.register(connection, "src", self.ws.lake.scan(definition.source, info.version))
        try:
            sampled = connection.sql(
                f"SELECT DISTINCT {keys} FROM src WHERE "
                + " AND ".join(f"{quote(k)} IS NOT NULL" for k in definition.join_keys)
                + f" ORDER BY hash({keys}) LIMIT {int(sample)}"
            ).to_arrow_table()
        finally:
            connection.close()
        entities = [tuple(r.values()) for r in sampled.to_pylist()]
        features = list(definition.features)
        online = self.online_store.read(definition.name, entities, features, ttl=None)
        report = SkewReport(view)
        spine_rows = []
        for entity, item in zip(entities, online, strict=True):
            if item.event_timestamp is None:
                report.mismatches.append({"entity": entity, "problem": "not in the online store"})
                continue
            spine_rows.append((entity, item))
        if not spine_rows:
            return report
        spine = pa.table(
            {
                **{k: [e[i] for e, _ in spine_rows] for i, k in enumerate(definition.join_keys)},
                "event_timestamp": pa.array(
                    [item.event_timestamp for _, item in spine_rows],
                    type=pa.timestamp("us", tz="UTC")
                    if _aware(definition, info, self.ws)
                    else pa.timestamp("us"),
                ),
            }
        )
        spine = spine.cast(
            pa.schema(
                [
                    *(pa.field(k, sampled.schema.field(k).type) for k in definition.join_keys),
                    spine.schema.field("event_timestamp"),
                ]
            )
        )
        offline = historical(self.ws, spine, [definition.name], record=False).table
        for i, (entity, item) in enumerate(spine_rows):
            report.checked += 1
            for feature in features:
                expected = offline.column(feature_column(definition.name, feature))[i].as_py()
                actual = item.values.get(feature)
                if not _same(expected, actual):
                    report.mismatches.append(
                        {
                            "entity": entity,
                            "feature": feature,
                            "online": actual,
                            "offline": expected,
                        }
                    )
        return report


def _aware(view: FeatureView, info: Any, ws: Workspace) -> bool:
    if view.timestamp is None:
        return True
    schema = pa.schema(ws.lake.delta_table(view.source, info.version).schema().to_arrow())
    return getattr(schema.field(view.timestamp).type, "tz", None) is not None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def _latest_sql(view: FeatureView, incremental: bool) -> str:
    keys = [quote(k) for k in view.join_keys]
    names = [quote(f) for f in view.features]
    exprs = [f"({e}) AS {quote(f)}" for f, e in view.features.items()]
    created = quote(view.created_timestamp) if view.created_timestamp else "NULL"
    if view.timestamp is None:
        ts = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
        where = "TRUE"
    else:
        ts = quote(view.timestamp)
        where = f"{ts} IS NOT NULL AND {ts} <= $end"
        if incremental:
            where += f" AND {ts} > $start"
    order = ", ".join(
        ["__ts DESC", "__created DESC NULLS LAST", *(f"{n} ASC NULLS LAST" for n in names)]
    )
    return (
        f"SELECT {', '.join(keys)}, {ts} AS __ts, {', '.join(exprs)} FROM "
        f"(SELECT *, {created} AS __created FROM src) WHERE {where} "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {order}) = 1"
    )
