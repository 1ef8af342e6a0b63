"""Dashboard pages over the data: the overview, lake tables (versions, quality, profile) and
the feature store's definitions and materializations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from plinth.catalog import models as m
from plinth.server.dashboard.base import (
    PAGE_SIZE,
    Ctx,
    Page,
    e,
    fmt_bytes,
    fmt_num,
    fmt_time,
    link,
    pager,
    stat,
    table,
    ui_page,
)

__all__ = ["features", "overview", "table_detail", "tables"]

MAX_PROFILE_COLUMNS = 200
QUALITY_HEAD = ["version", "kind", "status", "checked", "passed", "warned", "quarantined"]
QUALITY_HEAD += ["checks", "at"]


@ui_page("/ui", "tables:read")
def overview(ctx: Ctx) -> Page:
    """Counts of what the catalog holds, the champion models and the open alerts."""
    with ctx.ws.catalog.session() as s:

        def count(model: Any) -> int:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)

        figures = [
            ("tables", count(m.LakeTable)),
            ("feature definitions", count(m.FeatureDefinition)),
            ("runs", count(m.Run)),
            ("model versions", count(m.ModelVersion)),
            ("pipeline runs", count(m.PipelineRun)),
            ("deployments", count(m.Deployment)),
            ("audit events", count(m.AuditEvent)),
        ]
        aliases = s.execute(
            select(m.ModelAlias.model_name, m.ModelAlias.alias, m.ModelAlias.version)
            .order_by(m.ModelAlias.model_name, m.ModelAlias.alias)
            .limit(PAGE_SIZE)
        ).all()
        alerts = s.execute(
            select(m.Alert.id, m.Alert.rule, m.Alert.model_name, m.Alert.severity, m.Alert.fired_at)
            .where(m.Alert.state == "firing")
            .order_by(m.Alert.fired_at.desc())
            .limit(20)
        ).all()
    models = table(
        ["model", "alias", "version", ""],
        (
            [
                link(f"/ui/models/{name}", name),
                e(alias),
                e(version),
                link("/ui/lineage", "lineage", object=f"{name}@{alias}"),
            ]
            for name, alias, version in aliases
        ),
        empty="No model has an alias yet.",
    )
    firing = table(
        ["alert", "rule", "model", "severity", "fired"],
        (
            [e(i), e(rule), link(f"/ui/monitoring/{model}", model), e(sev), e(fmt_time(at))]
            for i, rule, model, sev, at in alerts
        ),
        empty="No alert is firing.",
    )
    body = (
        "<p>" + "".join(stat(label, value) for label, value in figures) + "</p>"
        f"<h2>Models with aliases</h2>{models}<h2>Firing alerts</h2>{firing}"
    )
    return Page(f"Workspace {ctx.project}", body, "/ui")


@ui_page("/ui/tables", "tables:read")
def tables(ctx: Ctx) -> Page:
    """The lake's tables with their latest version (filter by name, paginated)."""
    offset, wanted = ctx.offset(), ctx.query("q").strip()
    latest = (
        select(m.TableVersion.table_id, func.max(m.TableVersion.version).label("v"))
        .group_by(m.TableVersion.table_id)
        .subquery()
    )
    query = (
        select(m.LakeTable, m.TableVersion)
        .outerjoin(latest, latest.c.table_id == m.LakeTable.id)
        .outerjoin(
            m.TableVersion,
            (m.TableVersion.table_id == m.LakeTable.id) & (m.TableVersion.version == latest.c.v),
        )
        .order_by(m.LakeTable.name)
        .offset(offset)
        .limit(PAGE_SIZE + 1)
    )
    if wanted:
        query = query.where(m.LakeTable.name.contains(wanted, autoescape=True))
    with ctx.ws.catalog.session() as s:
        found = s.execute(query).all()
        rows = [
            [
                link(f"/ui/tables/{t.name}", t.name),
                e(v.version if v else "-"),
                e(fmt_num(v.row_count) if v else "-"),
                e(fmt_bytes(v.bytes) if v else "-"),
                e(fmt_time(v.created_at if v else None)),
                e(t.description or ""),
            ]
            for t, v in found[:PAGE_SIZE]
        ]
    search = (
        "<form method='get' action='/ui/tables'><input name='q' placeholder='name contains' "
        f"value='{e(wanted)}'> <button>Filter</button></form>"
    )
    body = (
        search
        + table(["table", "version", "rows", "size", "written", "description"], rows)
        + pager("/ui/tables", offset, len(rows), len(found) > PAGE_SIZE, q=wanted)
    )
    return Page("Tables", body, "/ui/tables")


def _profile(columns: dict[str, Any]) -> str:
    from plinth.quality.privacy import WITHHELD, is_withheld

    rows = []
    for name, c in list(columns.items())[:MAX_PROFILE_COLUMNS]:
        if not isinstance(c, dict):
            continue
        values = (
            [e(WITHHELD), "", ""]
            if is_withheld(c)
            else [e(fmt_num(c.get(k))) for k in ("min", "mean", "max")]
        )
        rows.append(
            [
                e(name),
                e(c.get("type", "")),
                e(fmt_num(c.get("null_fraction"))),
                e(fmt_num(c.get("distinct"))),
                *values,
            ]
        )
    more = len(columns) - MAX_PROFILE_COLUMNS
    note = f"<p class='muted'>{more:,} more columns not shown.</p>" if more > 0 else ""
    head = ["column", "type", "null share", "distinct", "min", "mean", "max"]
    return table(head, rows, empty="No profile.") + note


def _private(columns: dict[str, Any], pii: Iterable[str]) -> dict[str, Any]:
    """A stored profile's columns with the contract's personal data withheld."""
    from plinth.quality.privacy import sanitize_profile

    return sanitize_profile({"columns": columns}, pii)["columns"]


def _checks(checks: dict[str, Any]) -> str:
    parts = []
    for key, value in (checks.get("rows") or {}).items():
        parts.append(f"{key}: {value:,} rows" if isinstance(value, int) else f"{key}: {value}")
    for key, value in (checks.get("table") or {}).items():
        ok = value.get("passed") if isinstance(value, dict) else value
        parts.append(f"{key}: {'passed' if ok else 'failed'}")
    return e("; ".join(parts) or "-")


@ui_page("/ui/tables/{name}", "tables:read")
def table_detail(ctx: Ctx) -> Page:
    """One table: its versions (paginated), quality results and the latest profile."""
    from plinth.errors import NotFoundError
    from plinth.quality.privacy import table_pii

    name, offset = ctx.path("name"), ctx.offset()
    pii = table_pii(ctx.ws.catalog, name)  # read first: catalog sessions do not nest
    with ctx.ws.catalog.session() as s:
        lake_table = s.scalar(select(m.LakeTable).where(m.LakeTable.name == name))
        if lake_table is None:
            raise NotFoundError(f"No table is named '{name}'.")
        versions = s.scalars(
            select(m.TableVersion)
            .where(m.TableVersion.table_id == lake_table.id)
            .order_by(m.TableVersion.version.desc())
            .offset(offset)
            .limit(PAGE_SIZE + 1)
        ).all()
        version_rows = [
            [
                e(v.version),
                e(v.operation),
                e(fmt_num(v.row_count)),
                e(fmt_num(v.rows_added)),
                e(fmt_bytes(v.bytes)),
                e(fmt_time(v.created_at)),
                e(v.created_by),
                link("/ui/lineage", "lineage", object=f"{name}@{v.version}"),
            ]
            for v in versions[:PAGE_SIZE]
        ]
        results = s.scalars(
            select(m.QualityResult)
            .where(m.QualityResult.table_name == name)
            .order_by(m.QualityResult.id.desc())
            .limit(20)
        ).all()
        quality_rows = [
            [
                e(q.table_version if q.table_version is not None else "-"),
                e(q.kind),
                f"<span class='{'ok' if q.status == 'passed' else 'warn'}'>{e(q.status)}</span>",
                e(fmt_num(q.rows_checked)),
                e(fmt_num(q.rows_passed)),
                e(fmt_num(q.rows_warned)),
                e(fmt_num(q.rows_quarantined)),
                _checks(q.checks or {}),
                e(fmt_time(q.created_at)),
            ]
            for q in results
        ]
        profile = s.scalars(
            select(m.Profile).where(m.Profile.table_name == name).order_by(m.Profile.id.desc())
        ).first()
        profile_html = (
            f"<p class='muted'>Version {e(profile.version)}, {profile.row_count:,} rows.</p>"
            + _profile(_private(profile.columns or {}, pii))
            if profile is not None
            else "<p class='muted'>No profile yet.</p>"
        )
        schema = versions[0].schema if versions else []
    schema_rows = (
        [e(c.get("name", "")), e(c.get("type", ""))] for c in schema if isinstance(c, dict)
    )
    body = (
        f"<p class='muted'>{e(lake_table.description or '')} Timestamp column: "
        f"{e(lake_table.timestamp_column or '-')}; keys: "
        f"{e(', '.join(lake_table.key_columns or []) or '-')}.</p>"
        "<h2>Versions</h2>"
        + table(
            ["version", "operation", "rows", "added", "size", "written", "by", ""], version_rows
        )
        + pager(f"/ui/tables/{name}", offset, len(version_rows), len(versions) > PAGE_SIZE)
        + "<h2>Quality results</h2>"
        + table(
            QUALITY_HEAD,
            quality_rows,
            empty="No contract checks recorded.",
        )
        + "<h2>Profile</h2>"
        + profile_html
        + "<h2>Schema</h2>"
        + table(["column", "type"], schema_rows)
    )
    return Page(f"Table {name}", body, "/ui/tables")


@ui_page("/ui/features", "features:read")
def features(ctx: Ctx) -> Page:
    """Entities, feature views and services (latest version of each) and materializations."""
    fd = m.FeatureDefinition
    latest = (
        select(fd.kind, fd.name, func.max(fd.version).label("v"))
        .group_by(fd.kind, fd.name)
        .subquery()
    )
    with ctx.ws.catalog.session() as s:
        definitions = s.scalars(
            select(m.FeatureDefinition)
            .join(
                latest,
                (latest.c.kind == m.FeatureDefinition.kind)
                & (latest.c.name == m.FeatureDefinition.name)
                & (latest.c.v == m.FeatureDefinition.version),
            )
            .order_by(m.FeatureDefinition.kind, m.FeatureDefinition.name)
            .limit(500)
        ).all()
        materialized = s.scalars(
            select(m.Materialization).order_by(m.Materialization.id.desc()).limit(PAGE_SIZE)
        ).all()
        rows = []
        for d in definitions:
            spec = d.spec or {}
            detail = spec.get("features") or spec.get("join_keys") or spec.get("views") or ""
            if isinstance(detail, dict):
                detail = ", ".join(detail)
            elif isinstance(detail, list):
                detail = ", ".join(str(x) for x in detail)
            source = spec.get("source")
            rows.append(
                [
                    e(d.kind),
                    e(d.name),
                    e(d.version),
                    link(f"/ui/tables/{source}", source) if source else "-",
                    e(detail),
                    e(spec.get("description") or ""),
                ]
            )
        mat_rows = [
            [
                e(x.view_name),
                e(x.view_version),
                e(x.table_version),
                e(fmt_num(x.rows)),
                e(fmt_time(x.created_at)),
            ]
            for x in materialized
        ]
    body = (
        table(["kind", "name", "version", "source", "features / keys", "description"], rows)
        + "<h2>Materializations</h2>"
        + table(["view", "view version", "table version", "entities", "at"], mat_rows)
    )
    return Page("Features", body, "/ui/features")
