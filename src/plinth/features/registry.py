"""The feature registry: lint definitions, diff them against the catalog, record versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import func, select

from plinth._core.clock import utcnow
from plinth._core.sql import quote
from plinth.catalog import audit
from plinth.catalog.models import FeatureDefinition
from plinth.errors import ConfigError, NotFoundError
from plinth.features.definitions import (
    Definition,
    Entity,
    FeatureService,
    FeatureView,
    kind_of,
    spec_hash,
)

if TYPE_CHECKING:
    from plinth.workspace import Workspace


#: The audit resource prefix of each definition kind (as in the lineage graph).
_RESOURCE_KINDS = {"entity": "entity", "view": "feature_view", "service": "feature_service"}


@dataclass(frozen=True)
class Change:
    """What applying one definition did: ``created``, ``changed`` or ``unchanged``."""

    kind: str
    name: str
    version: int
    status: str


@dataclass(frozen=True)
class Selection:
    """The features one view contributes to a retrieval, with the view's version."""

    view: FeatureView
    version: int
    features: tuple[str, ...]


def lint(ws: Workspace, definitions: Sequence[Definition]) -> None:
    """Check definitions against the lake and each other; raise naming every problem.

    Views must read an existing table whose columns include the join keys and a temporal
    timestamp; every feature expression must bind in DuckDB; services must name known views
    and features.
    """
    import duckdb

    problems: list[str] = []
    views = {d.name: d for d in definitions if isinstance(d, FeatureView)}
    known_views = {name: view for name, (view, _) in latest_views(ws).items()}
    known_views.update(views)
    connection = duckdb.connect()
    try:
        for view in views.values():
            problems.extend(_lint_view(ws, view, connection))
    finally:
        connection.close()
    for service in (d for d in definitions if isinstance(d, FeatureService)):
        for ref in service.features:
            view_name, _, feature = ref.partition(":")
            view = known_views.get(view_name)
            if view is None:
                problems.append(f"service '{service.name}' names unknown view '{view_name}'")
            elif feature and feature not in view.features:
                problems.append(
                    f"service '{service.name}' names unknown feature '{ref}' (view "
                    f"'{view_name}' has {', '.join(view.features)})"
                )
    if problems:
        raise ConfigError(
            f"The feature definitions have problems: {'; '.join(problems)}.",
            hint="Fix the definitions and run 'plinth features apply' again.",
        )


def _lint_view(ws: Workspace, view: FeatureView, connection: Any) -> list[str]:
    try:
        info = ws.lake.version(view.source)
    except NotFoundError:
        return [f"view '{view.name}' reads table '{view.source}', which does not exist"]
    schema = pa.schema(ws.lake.delta_table(view.source, info.version).schema().to_arrow())
    problems = []
    for key in view.join_keys:
        if key not in schema.names:
            problems.append(
                f"view '{view.name}': join key '{key}' is not a column of '{view.source}'"
            )
    for label, column in (
        ("timestamp", view.timestamp),
        ("created_timestamp", view.created_timestamp),
    ):
        if column is None:
            continue
        if column not in schema.names:
            problems.append(
                f"view '{view.name}': {label} column '{column}' is not in '{view.source}'"
            )
        elif not pa.types.is_timestamp(schema.field(column).type) and not pa.types.is_date(
            schema.field(column).type
        ):
            problems.append(
                f"view '{view.name}': {label} column '{column}' is "
                f"{schema.field(column).type}, not a timestamp"
            )
    connection.register("__plinth_src", pa.Table.from_batches([], schema=schema))
    try:
        for name, expression in view.features.items():
            try:
                # Selecting a plain column beside the expression makes an aggregate
                # (one value per table, not per row) fail to bind instead of passing.
                anchor = quote(schema.names[0])
                connection.execute(
                    f"SELECT {anchor}, ({expression}) AS {quote(name)} FROM __plinth_src"
                ).fetchall()
            except Exception as exc:
                reason = str(exc).splitlines()[0]
                if "GROUP BY" in reason:
                    reason = "it aggregates over rows; a feature is one value per source row"
                problems.append(
                    f"view '{view.name}': feature '{name}' = {expression!r} does "
                    f"not evaluate on '{view.source}': {reason}"
                )
    finally:
        connection.unregister("__plinth_src")
    return problems


def apply(
    ws: Workspace, definitions: Sequence[Definition], *, actor: str | None = None
) -> list[Change]:
    """Lint, then record a new version of every definition that is new or changed.

    ``actor`` is who the catalog and the audit chain name (default: the workspace user; a
    server passes its authenticated caller).

    Example:
        >>> # apply(ws, [origin, weather_view])
    """
    lint(ws, definitions)
    actor = actor or ws.settings.user
    changes: list[Change] = []
    with ws.catalog.session() as session:
        for definition in definitions:
            kind = kind_of(definition)
            digest = spec_hash(definition)
            latest = session.scalar(
                select(FeatureDefinition)
                .where(FeatureDefinition.kind == kind, FeatureDefinition.name == definition.name)
                .order_by(FeatureDefinition.version.desc())
                .limit(1)
            )
            if latest is not None and latest.spec_hash == digest:
                changes.append(Change(kind, definition.name, latest.version, "unchanged"))
                continue
            version = 1 if latest is None else latest.version + 1
            session.add(
                FeatureDefinition(
                    kind=kind,
                    name=definition.name,
                    version=version,
                    spec=definition.spec(),
                    spec_hash=digest,
                    created_at=utcnow(),
                    created_by=actor,
                )
            )
            audit.record(
                session,
                actor=actor,
                action="features.apply",
                resource=f"{_RESOURCE_KINDS[kind]}:{definition.name}@{version}",
                details={
                    "kind": kind,
                    "spec_hash": digest,
                    "previous": None if latest is None else latest.version,
                },
            )
            changes.append(
                Change(kind, definition.name, version, "created" if latest is None else "changed")
            )
    return changes


def _latest_rows(ws: Workspace, kind: str) -> list[FeatureDefinition]:
    with ws.catalog.session() as session:
        newest = (
            select(FeatureDefinition.name, func.max(FeatureDefinition.version).label("v"))
            .where(FeatureDefinition.kind == kind)
            .group_by(FeatureDefinition.name)
            .subquery()
        )
        return list(
            session.scalars(
                select(FeatureDefinition)
                .join(
                    newest,
                    (FeatureDefinition.name == newest.c.name)
                    & (FeatureDefinition.version == newest.c.v),
                )
                .where(FeatureDefinition.kind == kind)
                .order_by(FeatureDefinition.name)
            )
        )


def latest_entities(ws: Workspace) -> dict[str, tuple[Entity, int]]:
    """The newest version of every entity, by name."""
    return {r.name: (Entity.from_spec(r.spec), r.version) for r in _latest_rows(ws, "entity")}


def latest_views(ws: Workspace) -> dict[str, tuple[FeatureView, int]]:
    """The newest version of every feature view, by name."""
    entities = {name: entity for name, (entity, _) in latest_entities(ws).items()}
    return {
        r.name: (FeatureView.from_spec(r.spec, entities), r.version)
        for r in _latest_rows(ws, "view")
    }


def latest_services(ws: Workspace) -> dict[str, tuple[FeatureService, int]]:
    """The newest version of every feature service, by name."""
    return {
        r.name: (FeatureService.from_spec(r.spec), r.version) for r in _latest_rows(ws, "service")
    }


def resolve(ws: Workspace, features: FeatureService | str | Sequence[str]) -> list[Selection]:
    """Turn a service, a service name, or ``view`` / ``view:feature`` references into selections.

    Example:
        >>> # resolve(ws, ["weather", "planes:seats"])
    """
    if isinstance(features, FeatureService):
        refs: Sequence[str] = features.features
    elif isinstance(features, str):
        services = latest_services(ws)
        refs = services[features][0].features if features in services else [features]
    else:
        refs = list(features)
    views = latest_views(ws)
    chosen: dict[str, list[str]] = {}
    for ref in refs:
        view_name, _, feature = ref.partition(":")
        if view_name not in views:
            raise NotFoundError(
                f"Unknown feature view '{view_name}' (in '{ref}').",
                hint="Run 'plinth features list' to see the applied views.",
            )
        view = views[view_name][0]
        names = [feature] if feature else list(view.features)
        for name in names:
            if name not in view.features:
                raise NotFoundError(
                    f"Feature view '{view_name}' has no feature '{name}'.",
                    hint=f"Its features are: {', '.join(view.features)}.",
                )
            if name not in chosen.setdefault(view_name, []):
                chosen[view_name].append(name)
    return [Selection(views[v][0], views[v][1], tuple(names)) for v, names in chosen.items()]
