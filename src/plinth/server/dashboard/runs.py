"""Dashboard pages over tracked runs: the list, one run with its metric curves, a comparison.

Metric series are downsampled in the catalog query (:func:`plinth.tracking.history.
metric_history` keeps each bucket's extremes) to at most :data:`MAX_POINTS` points per series
before they are drawn with :func:`plinth.tracking.plot.line_chart`, so ten runs of ten
thousand steps each draw five thousand points, not a hundred thousand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plinth.catalog import models as m
from plinth.errors import ConfigError
from plinth.server.dashboard.base import (
    PAGE_SIZE,
    Ctx,
    Page,
    e,
    fmt_num,
    fmt_time,
    kv,
    link,
    pager,
    table,
    ui_page,
)
from plinth.tracking.plot import PALETTE, line_chart

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from plinth.tracking.history import MetricHistory

__all__ = ["MAX_CHARTS", "MAX_COMPARE", "MAX_POINTS", "curves", "run_compare", "run_detail", "runs"]

#: Points per metric series drawn (the series is downsampled on the server to this).
MAX_POINTS = 500
#: Metric charts per page at most.
MAX_CHARTS = 24
#: Runs compared side by side at most (one colour each).
MAX_COMPARE = len(PALETTE)
_SHOWN_METRICS = 4


@ui_page("/ui/runs", "runs:read")
def runs(ctx: Ctx) -> Page:
    """Runs, newest first, filtered with the ``plinth runs list --filter`` language."""
    offset, wanted = ctx.offset(), ctx.query("filter").strip()
    error = ""
    try:
        found = ctx.ws.runs.list(filter=wanted or None, limit=PAGE_SIZE + 1, offset=offset)
    except ConfigError as exc:
        found, error = [], f"<p class='bad'>{e(exc.message)}</p>"
    rows = []
    for r in found[:PAGE_SIZE]:
        shown = list(r.metrics.items())[:_SHOWN_METRICS]
        metrics = ", ".join(f"{k} {fmt_num(v)}" for k, v in shown)
        rows.append(
            [
                f"<input type='checkbox' name='ids' value='{e(r.id)}' form='compare'>",
                link(f"/ui/runs/{r.id}", r.id),
                e(r.experiment),
                e(r.status),
                e(fmt_time(r.started_at)),
                e(fmt_num(r.duration)),
                e(metrics),
            ]
        )
    form = (
        "<form method='get' action='/ui/runs'><input name='filter' size='60' "
        f"placeholder=\"metrics.auc &gt; 0.7 and experiment = 'delay-model'\" value='{e(wanted)}'>"
        " <button>Filter</button></form>"
        "<form id='compare' method='get' action='/ui/runs/compare'></form>"
    )
    body = (
        form
        + error
        + table(["", "run", "experiment", "status", "started", "seconds", "metrics"], rows)
        + pager("/ui/runs", offset, len(rows), len(found) > PAGE_SIZE, filter=wanted)
        + "<p><button form='compare' type='submit'>Compare selected</button></p>"
    )
    return Page("Runs", body, "/ui/runs")


def _series_keys(session: Session, run_ids: Sequence[str]) -> list[str]:
    """The metric keys with more than one point in any of the runs, in name order."""
    keys = session.scalars(
        select(m.RunMetric.key)
        .where(m.RunMetric.run_id.in_(run_ids), m.RunMetric.count > 1)
        .distinct()
        .order_by(m.RunMetric.key)
    ).all()
    return list(keys)[:MAX_CHARTS]


def curves(ctx: Ctx, run_ids: Sequence[str], labels: dict[str, str] | None = None) -> str:
    """One SVG line chart per metric series of ``run_ids`` (one line per run), each series
    downsampled on the server to at most :data:`MAX_POINTS` points.

    Example:
        >>> # html = curves(ctx, ["run_01...", "run_02..."])
    """
    from plinth.errors import NotFoundError
    from plinth.tracking.history import metric_history

    labels = labels or {}
    colors = {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(run_ids)}
    parts: list[str] = []
    with ctx.ws.catalog.session() as session:
        keys = _series_keys(session, run_ids)
        for key in keys:
            histories: list[MetricHistory] = []
            for run_id in run_ids:
                try:
                    histories.append(metric_history(session, run_id, key, MAX_POINTS))
                except NotFoundError:
                    continue
            if not histories:
                continue
            names = [labels.get(h.run_id, h.run_id) for h in histories]
            shown = sum(len(h.steps) for h in histories)
            total = sum(h.total for h in histories)
            note = f"{shown:,} of {total:,} points drawn" if shown < total else f"{total:,} points"
            chart = line_chart(histories, [colors[h.run_id] for h in histories], names, title=key)
            parts.append(
                f"<div class='card metric-curve'><h3>{e(key)} <span class='muted small'>"
                f"{e(note)}</span></h3>{chart}</div>"
            )
    if not parts:
        return "<p class='muted'>No metric was logged at more than one step.</p>"
    legend = "".join(
        f"<span class='sw' style='background:{color}'></span>{e(labels.get(r, r))}"
        for r, color in colors.items()
    )
    return f"<p class='legend'>{legend}</p>" + "".join(parts)


@ui_page("/ui/runs/compare", "runs:read")
def run_compare(ctx: Ctx) -> Page:
    """Runs side by side: attributes, parameters, last metric values and shared curves."""
    raw = ctx.request.query_params.getlist("ids")
    ids = list(dict.fromkeys(i.strip() for part in raw for i in part.split(",") if i.strip()))
    if not ids:
        raise ConfigError("No runs were chosen.", hint="Tick runs on the runs page.")
    if len(ids) > MAX_COMPARE:
        raise ConfigError(f"{len(ids)} runs were chosen; at most {MAX_COMPARE} fit side by side.")
    comparison = ctx.ws.runs.compare(ids)
    run_ids = comparison.run_ids
    head = ["", *run_ids]
    rows = []
    for row in comparison.rows:
        mark = " class='warn'" if row.differs else ""
        rows.append(
            [f"<span{mark}>{e(row.section)} {e(row.key)}</span>"]
            + [e(fmt_num(_plain(v))) for v in row.values]
        )
    links = " ".join(link(f"/ui/runs/{r}", r) for r in run_ids)
    body = (
        f"<p>{links}</p><h2>Metric curves</h2>"
        + curves(ctx, run_ids)
        + "<h2>Side by side</h2>"
        + table(head, rows)
    )
    return Page(f"Compare {len(run_ids)} runs", body, "/ui/runs")


def _plain(value: Any) -> Any:
    from datetime import datetime

    return fmt_time(value) if isinstance(value, datetime) else value


@ui_page("/ui/runs/{run_id}", "runs:read")
def run_detail(ctx: Ctx) -> Page:
    """One run: attributes, parameters, metric summaries and curves, resources, artifacts."""
    detail = ctx.ws.runs.get(ctx.path("run_id"))
    attributes = {
        "experiment": detail.experiment,
        "status": detail.status,
        "launcher": detail.launcher,
        "started": fmt_time(detail.started_at),
        "ended": fmt_time(detail.ended_at),
        "seconds": detail.duration,
        "by": detail.created_by,
        "parent": detail.parent_id or "-",
        "error": detail.error or "-",
    }
    metrics = table(
        ["metric", "last", "step", "lowest", "highest", "points"],
        (
            [
                e(k),
                *map(e, (fmt_num(s.last), s.last_step, fmt_num(s.min), fmt_num(s.max))),
                e(fmt_num(s.count)),
            ]
            for k, s in detail.metric_summaries.items()
        ),
    )
    resources = table(
        ["rank", "host", "wall s", "cpu s", "peak memory", "gpus"],
        (
            [
                e(r.rank),
                e(r.host),
                e(fmt_num(r.wall_seconds)),
                e(fmt_num(r.cpu_seconds)),
                e(f"{r.peak_rss_bytes / 2**20:,.0f} MiB"),
                e(r.gpu_count),
            ]
            for r in detail.resources
        ),
    )
    artifacts = table(
        ["artifact", "kind", "bytes"],
        ([e(a.name), e(a.kind), e(fmt_num(a.size))] for a in detail.artifacts),
    )
    inputs = table(
        ["input", "relation"],
        ([e(str(edge.source)), e(getattr(edge, "relation", ""))] for edge in detail.inputs),
    )
    body = (
        f"<p>{link('/ui/lineage', 'lineage graph', object=detail.id)}</p>"
        + kv(attributes)
        + "<h2>Metric curves</h2>"
        + curves(ctx, [detail.id])
        + "<h2>Metrics</h2>"
        + metrics
        + "<h2>Parameters</h2>"
        + kv(sorted(detail.params.items()))
        + "<h2>Inputs</h2>"
        + inputs
        + "<h2>Resources</h2>"
        + resources
        + "<h2>Artifacts</h2>"
        + artifacts
    )
    return Page(f"Run {detail.id}", body, "/ui/runs")
