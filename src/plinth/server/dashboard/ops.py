"""Dashboard pages over operations: pipeline runs (the DAG with each step's status) and
deployments with their traffic (throughput, latency and error rate from the prediction log).

The traffic figures are one DuckDB aggregation over two columns of the model's prediction log
(``answered_at`` and ``latency_ms``) into at most :data:`TRAFFIC_BUCKETS` time buckets, so a
log of millions of rows costs one column scan, never a load into Python.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from plinth.catalog import models as m
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
    stat,
    table,
    ui_page,
)

__all__ = ["TRAFFIC_BUCKETS", "dag_svg", "deployments", "pipeline_detail", "pipelines", "traffic"]

#: Time buckets of the traffic charts.
TRAFFIC_BUCKETS = 120
STATUS_COLORS = {
    "succeeded": "#bbf7d0",
    "cached": "#bfdbfe",
    "running": "#fde68a",
    "pending": "#eef1f5",
    "failed": "#fca5a5",
    "skipped": "#e5e7eb",
}
_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _PAD = 170, 46, 50, 16, 12


@ui_page("/ui/pipelines", "runs:read")
def pipelines(ctx: Ctx) -> Page:
    """Pipeline runs, newest first (paginated), with step counts by status."""
    offset = ctx.offset()
    with ctx.ws.catalog.session() as s:
        found = s.scalars(
            select(m.PipelineRun)
            .order_by(m.PipelineRun.started_at.desc(), m.PipelineRun.id.desc())
            .offset(offset)
            .limit(PAGE_SIZE + 1)
        ).all()
        ids = [r.id for r in found[:PAGE_SIZE]]
        counts: dict[str, dict[str, int]] = {i: {} for i in ids}
        for run_id, status, n in s.execute(
            select(m.StepRun.pipeline_run_id, m.StepRun.status, func.count())
            .where(m.StepRun.pipeline_run_id.in_(ids))
            .group_by(m.StepRun.pipeline_run_id, m.StepRun.status)
        ):
            counts[run_id][status] = int(n)
        rows = [
            [
                link(f"/ui/pipelines/{r.id}", r.id),
                e(r.pipeline),
                f"<span class='{_css(r.status)}'>{e(r.status)}</span>",
                e(", ".join(f"{n} {k}" for k, n in sorted(counts[r.id].items())) or "-"),
                e(r.executor),
                e(fmt_time(r.started_at)),
                e(r.created_by),
            ]
            for r in found[:PAGE_SIZE]
        ]
    body = table(["run", "pipeline", "status", "steps", "executor", "started", "by"], rows) + pager(
        "/ui/pipelines", offset, len(rows), len(found) > PAGE_SIZE
    )
    return Page("Pipelines", body, "/ui/pipelines")


def _css(status: str) -> str:
    return {"succeeded": "ok", "failed": "bad", "running": "warn"}.get(status, "")


def dag_svg(steps: list[dict[str, Any]], status: dict[str, str]) -> str:
    """The pipeline's DAG as SVG: a column per depth, one box per step coloured by status,
    an arrow per dependency.

    Example:
        >>> svg = dag_svg([{"name": "a", "after": []}, {"name": "b", "after": ["a"]}],
        ...               {"a": "succeeded"})
        >>> svg.startswith("<svg") and "marker-end" in svg
        True
    """
    from html import escape

    names = [str(st.get("name")) for st in steps]
    after = {str(st.get("name")): [str(a) for a in st.get("after") or []] for st in steps}
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            parents = [p for p in after.get(name, []) if p in after and p not in seen]
            depth[name] = 1 + max((level(p, seen | {name}) for p in parents), default=-1)
        return depth[name]

    columns: dict[int, list[str]] = {}
    for name in names:
        columns.setdefault(level(name), []).append(name)
    spots = {
        name: (_PAD + col * (_BOX_W + _GAP_X), _PAD + row * (_BOX_H + _GAP_Y))
        for col, keys in columns.items()
        for row, name in enumerate(keys)
    }
    width = _PAD * 2 + (max(columns, default=0) + 1) * (_BOX_W + _GAP_X) - _GAP_X
    height = _PAD * 2 + max((len(k) for k in columns.values()), default=1) * (_BOX_H + _GAP_Y)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>pipeline DAG</title>'
        '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#888"/></marker></defs>'
    ]
    for name in names:
        tx, ty = spots[name]
        for parent in after[name]:
            if parent not in spots:
                continue
            sx, sy = spots[parent]
            x1, y1, x2, y2 = sx + _BOX_W, sy + _BOX_H / 2, tx, ty + _BOX_H / 2
            mid = (x1 + x2) / 2
            out.append(
                f'<path d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} '
                f'{x2:.0f},{y2:.0f}" fill="none" stroke="#999" marker-end="url(#dag-arrow)"/>'
            )
    for name in names:
        x, y = spots[name]
        state = status.get(name, "pending")
        fill = STATUS_COLORS.get(state, "#eef1f5")
        out.append(
            f'<g><title>{escape(name)}: {escape(state)}</title><rect x="{x}" y="{y}" '
            f'width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="{fill}" stroke="#777"/>'
            f'<text x="{x + 8}" y="{y + 19}" font-weight="600">{escape(name[:24])}</text>'
            f'<text x="{x + 8}" y="{y + 36}" class="kind">{escape(state)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


@ui_page("/ui/pipelines/{run_id}", "runs:read")
def pipeline_detail(ctx: Ctx) -> Page:
    """One pipeline run: its DAG with each step's status, then the steps in detail."""
    detail = ctx.ws.pipelines.get(ctx.path("run_id"))
    steps = list((detail.dag or {}).get("steps") or [])
    if not steps:
        steps = [{"name": st.name, "after": st.after} for st in detail.steps]
    status = {st.name: st.status for st in detail.steps}
    rows = [
        [
            e(st.name),
            f"<span class='{_css(st.status)}'>{e(st.status)}</span>",
            e(st.attempts),
            e(fmt_num(st.duration)),
            e(st.cached_from or "-"),
            e(", ".join(f"{k}={v}" for k, v in (st.outputs or {}).items())[:300]),
            e(st.error or ""),
        ]
        for st in detail.steps
    ]
    attributes = {
        "pipeline": detail.pipeline,
        "status": detail.status,
        "executor": detail.executor,
        "started": fmt_time(detail.started_at),
        "ended": fmt_time(detail.ended_at),
        "seconds": detail.duration,
        "by": detail.created_by,
        "error": detail.error or "-",
    }
    body = (
        f"<p>{link('/ui/lineage', 'lineage graph', object=detail.id)}</p>"
        + kv(attributes)
        + "<h2>DAG</h2><div class='scroll'>"
        + dag_svg(steps, status)
        + "</div><h2>Steps</h2>"
        + table(["step", "status", "attempts", "seconds", "cached from", "outputs", "error"], rows)
        + "<h2>Parameters</h2>"
        + kv(sorted((detail.params or {}).items()))
    )
    return Page(f"Pipeline run {detail.id}", body, "/ui/pipelines")


def traffic(ctx: Ctx, model: str) -> dict[str, Any] | None:
    """Throughput and latency of a model's answered requests from its prediction log, in at
    most :data:`TRAFFIC_BUCKETS` time buckets; ``None`` when the model has no log.

    Example:
        >>> # traffic(ctx, "delay")["requests"]
    """
    import duckdb

    from plinth.errors import NotFoundError
    from plinth.lake.duck import register
    from plinth.serving.prediction_log import log_table

    try:
        dataset = ctx.ws.lake.scan(log_table(model))
    except NotFoundError:
        return None
    with duckdb.connect() as con:
        register(con, "log", dataset)
        first, last, requests = con.execute(
            "SELECT epoch(min(answered_at)), epoch(max(answered_at)), "
            'count(*) FILTER (WHERE "row" = 0) FROM log'
        ).fetchone()
        if not requests:
            return {"requests": 0, "buckets": []}
        width = max((float(last) - float(first)) / TRAFFIC_BUCKETS, 1.0)
        buckets = con.execute(
            "SELECT floor((epoch(answered_at) - ?) / ?) AS b, count(*) AS n, "
            'quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FROM log WHERE "row" = 0 '
            "GROUP BY b ORDER BY b",
            [float(first), width],
        ).fetchall()
        overall = con.execute(
            'SELECT quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FROM log WHERE "row" = 0'
        ).fetchone()[0]
    return {
        "requests": int(requests),
        "first": float(first),
        "last": float(last),
        "width_s": width,
        "overall": list(overall),
        "buckets": [(int(b), int(n), list(q)) for b, n, q in buckets],
    }


def _traffic_html(model: str, data: dict[str, Any] | None) -> str:
    from datetime import UTC, datetime

    from plinth.monitoring.report import AMBER, BLUE, GREEN, RED, _legend, _Series, _series_chart

    if data is None or not data["requests"]:
        return f"<p class='muted'>No prediction log for {e(model)} yet.</p>"
    first, width = data["first"], data["width_s"]
    count = int((data["last"] - first) // width) + 1
    rate: list[float | None] = [0.0] * count
    p50: list[float | None] = [None] * count
    p95: list[float | None] = [None] * count
    p99: list[float | None] = [None] * count
    for index, n, q in data["buckets"]:
        if 0 <= index < count:
            rate[index] = n / width
            p50[index], p95[index], p99[index] = q
    stamp = "%H:%M:%S" if data["last"] - first < 86_400 else "%m-%d %H:%M"
    labels = [datetime.fromtimestamp(first + i * width, UTC).strftime(stamp) for i in range(count)]
    span = data["last"] - first
    mean_rate = data["requests"] / span if span > 0 else None
    q50, q95, q99 = data["overall"]
    figures = "".join(
        [
            stat("requests answered", data["requests"]),
            stat("requests/s (mean)", mean_rate),
            stat("p50 ms", q50),
            stat("p95 ms", q95),
            stat("p99 ms", q99),
        ]
    )
    since = datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%d %H:%M:%S")
    until = datetime.fromtimestamp(data["last"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    latency = [_Series("p50", GREEN, p50), _Series("p95", AMBER, p95), _Series("p99", RED, p99)]
    return (
        f"<p>{figures}</p><p class='muted small'>Answered {e(since)} to {e(until)} UTC, "
        f"{e(fmt_num(width))} s per point. Only answered requests are logged, so the error "
        "rate is the serving process's own (plinth_requests_total with a 5xx status on its "
        "/metrics).</p>"
        + "<div class='card traffic'><h3>Throughput (requests/s)</h3>"
        + _series_chart(labels, [_Series("requests/s", BLUE, rate)], title="requests/s")
        + "</div><div class='card traffic'><h3>Latency (ms)</h3>"
        + _series_chart(labels, latency, title="latency ms")
        + _legend([(s.label, s.color) for s in latency])
        + "</div>"
    )


@ui_page("/ui/deployments", "deployments:read")
def deployments(ctx: Ctx) -> Page:
    """Deployments (routes, target, revision) and each served model's traffic."""
    from plinth.serving.prediction_log import log_table

    items = ctx.ws.deployments.list()
    rows = [
        [
            e(d.name),
            link(f"/ui/models/{d.model}", d.model),
            e(d.spec.describe()),
            e(d.target),
            e(d.revision),
            e(fmt_time(d.updated_at)),
            e(d.updated_by),
        ]
        for d in items
    ]
    served = {d.model for d in items}
    prefix = log_table("")
    with ctx.ws.catalog.session() as s:
        logged = s.scalars(
            select(m.LakeTable.name).where(m.LakeTable.name.startswith(prefix)).limit(20)
        ).all()
    served |= {name[len(prefix) :] for name in logged}
    sections = "".join(
        f"<h2>Traffic: {link(f'/ui/models/{model}', model)} "
        f"<span class='small'>{link(f'/ui/monitoring/{model}', 'monitoring')}</span></h2>"
        + _traffic_html(model, traffic(ctx, model))
        for model in sorted(served)
    )
    body = (
        table(
            ["deployment", "model", "routes", "target", "revision", "updated", "by"],
            rows,
            empty="No deployment is recorded (a model served with 'plinth serve' shows below).",
        )
        + sections
    )
    return Page("Deployments", body, "/ui/deployments")
