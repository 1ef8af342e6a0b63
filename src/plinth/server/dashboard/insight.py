"""Dashboard pages that explain: monitoring (drift charts, performance, latency, alerts) and
the lineage graph.

The monitoring page embeds the body of :func:`plinth.monitoring.report.render_report` over
:func:`plinth.monitoring.summary.monitoring_summary` (the same charts as ``plinth monitor
report``); the lineage page draws :func:`plinth.governance.lineage_html.render_svg`.
"""

from __future__ import annotations

from sqlalchemy import func, select

from plinth.catalog import models as m
from plinth.errors import ConfigError
from plinth.server.dashboard.base import (
    Ctx,
    Page,
    e,
    fmt_num,
    fmt_time,
    link,
    table,
    ui_page,
)

__all__ = ["WINDOWS", "lineage_page", "monitoring", "monitoring_model", "report_body"]

#: The monitoring windows offered.
WINDOWS = ("1h", "1d", "7d", "30d")
DIRECTIONS = ("up", "down", "both")


def report_body(page: str) -> str:
    """The inside of a report page's ``<body>`` (the dashboard supplies head and style).

    Example:
        >>> report_body("<html><body><h1>x</h1></body></html>")
        '<h1>x</h1>'
    """
    start = page.find("<body>")
    end = page.rfind("</body>")
    if start < 0 or end < 0:
        return page
    return page[start + len("<body>") : end]


@ui_page("/ui/monitoring", "monitoring:read")
def monitoring(ctx: Ctx) -> Page:
    """Monitored models (those with a monitoring profile) and the latest alerts."""
    with ctx.ws.catalog.session() as s:
        profiles = s.execute(
            select(
                m.MonitorProfile.model_name,
                func.max(m.MonitorProfile.model_version),
                func.max(m.MonitorProfile.updated_at),
            )
            .group_by(m.MonitorProfile.model_name)
            .order_by(m.MonitorProfile.model_name)
            .limit(200)
        ).all()
        alerts = s.scalars(select(m.Alert).order_by(m.Alert.id.desc()).limit(50)).all()
        alert_rows = [
            [
                e(a.id),
                e(a.rule),
                link(f"/ui/monitoring/{a.model_name}", a.model_name),
                e(a.severity),
                f"<span class='{'bad' if a.state == 'firing' else 'ok'}'>{e(a.state)}</span>",
                e(fmt_num(a.value)),
                e(fmt_time(a.fired_at)),
                e(fmt_time(a.resolved_at)),
                e(a.message),
            ]
            for a in alerts
        ]
    rows = [
        [link(f"/ui/monitoring/{name}", name), e(version), e(fmt_time(updated))]
        for name, version, updated in profiles
    ]
    body = (
        table(["model", "newest version monitored", "updated"], rows, empty="Nothing monitored.")
        + "<h2>Alerts</h2>"
        + table(
            ["alert", "rule", "model", "severity", "state", "value", "fired", "resolved", "says"],
            alert_rows,
            empty="No alert has fired.",
        )
    )
    return Page("Monitoring", body, "/ui/monitoring")


def _target_uri(ctx: Ctx, model: str, alias: str) -> str:
    """The model version to monitor: ``model@alias`` when given or set, else the newest
    version that has a monitoring profile."""
    from plinth.errors import NotFoundError

    with ctx.ws.catalog.session() as s:
        if alias:
            return f"{model}@{alias}"
        held = s.scalar(
            select(m.ModelAlias.version).where(
                m.ModelAlias.model_name == model, m.ModelAlias.alias == "champion"
            )
        )
        if held is not None:
            return f"{model}@champion"
        version = s.scalar(
            select(func.max(m.MonitorProfile.model_version)).where(
                m.MonitorProfile.model_name == model
            )
        )
    if version is None:
        raise NotFoundError(f"Model '{model}' is not monitored.")
    return f"{model}:{version}"


@ui_page("/ui/monitoring/{model}", "monitoring:read")
def monitoring_model(ctx: Ctx) -> Page:
    """One model's monitoring: drift per window and feature, performance, quality, latency
    and alerts, drawn by the monitoring report."""
    from plinth.monitoring.facts import Target
    from plinth.monitoring.report import render_report
    from plinth.monitoring.summary import monitoring_summary

    model = ctx.path("model")
    window = ctx.query("window", "30d")
    if window not in WINDOWS:
        raise ConfigError(f"'{window}' is not a window here.", hint=f"Use {', '.join(WINDOWS)}.")
    alias = ctx.query("alias").strip()
    uri = _target_uri(ctx, model, alias)
    summary = monitoring_summary(ctx.ws, Target(uri, window=window))
    choices = "".join(f"<option{' selected' if w == window else ''}>{w}</option>" for w in WINDOWS)
    form = (
        f"<form method='get' action='/ui/monitoring/{e(model)}'>"
        f"<input type='hidden' name='alias' value='{e(alias)}'>"
        f"<label>window <select name='window'>{choices}</select></label> "
        "<button>Show</button> "
        f"{link('/ui/lineage', 'lineage graph', object=uri)}</form>"
    )
    body = form + f"<div class='report'>{report_body(render_report(summary))}</div>"
    return Page(f"Monitoring {uri}", body, "/ui/monitoring")


def _default_object(ctx: Ctx) -> str:
    with ctx.ws.catalog.session() as s:
        found = s.execute(
            select(m.ModelAlias.model_name, m.ModelAlias.alias)
            .order_by((m.ModelAlias.alias != "champion"), m.ModelAlias.model_name)
            .limit(1)
        ).first()
    return f"{found[0]}@{found[1]}" if found else ""


@ui_page("/ui/lineage", "models:read")
def lineage_page(ctx: Ctx) -> Page:
    """The lineage graph of any object (``delay@champion``, ``flights@0``, a run id ...)."""
    from plinth.governance.lineage import lineage
    from plinth.governance.lineage_html import render_svg

    obj = ctx.query("object").strip() or _default_object(ctx)
    direction = ctx.query("direction", "up")
    if direction not in DIRECTIONS:
        hint = "Use up, down or both."
        raise ConfigError(f"'{direction}' is not a lineage direction.", hint=hint)
    raw_depth = ctx.query("depth").strip()
    depth = int(raw_depth) if raw_depth.isdigit() else None
    choices = "".join(
        f"<option{' selected' if d == direction else ''}>{d}</option>" for d in DIRECTIONS
    )
    form = (
        "<form method='get' action='/ui/lineage'><input name='object' size='40' "
        f"placeholder='delay@champion' value='{e(obj)}'> "
        f"<label>direction <select name='direction'>{choices}</select></label> "
        f"<label>depth <input name='depth' size='3' value='{e(raw_depth)}'></label> "
        "<button>Show</button></form>"
    )
    if not obj:
        return Page("Lineage", form + "<p class='muted'>Name an object.</p>", "/ui/lineage")
    graph = lineage(ctx.ws, obj, direction, depth)
    rows = [
        [e(n.kind), e(n.label), e(n.level), e(n.key)]
        for n in sorted(graph.nodes.values(), key=lambda n: (n.level, n.kind, n.id))
    ]
    note = " (stopped early)" if graph.truncated else ""
    body = (
        form + f"<p class='muted'>{len(graph.nodes)} nodes, {len(graph.edges)} edges{note}. Inputs "
        "are on the left; hover a box or an arrow for details.</p>"
        + f"<div class='scroll lineage'>{render_svg(graph)}</div>"
        + "<h2>Nodes</h2>"
        + table(["kind", "label", "level", "key"], rows)
    )
    return Page(f"Lineage of {obj}", body, "/ui/lineage")
