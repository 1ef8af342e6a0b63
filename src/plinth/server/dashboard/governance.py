"""Dashboard pages for governance: the audit chain (events and whether it verifies) and what
training, pipelines, serving and storage cost."""

from __future__ import annotations

import json

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
    pager,
    stat,
    table,
    ui_page,
)

__all__ = ["BY", "audit", "cost"]

#: The groupings the cost page offers.
BY = ("model", "run", "pipeline", "deployment")
_DETAILS_CHARS = 300


@ui_page("/ui/audit", "tokens:read")
def audit(ctx: Ctx) -> Page:
    """Audit events, newest first (paginated, filter by action or actor), and whether the
    hash chain verifies (with ``?verify=1``: it reads every event)."""
    from plinth.catalog.audit import head, verify

    offset = ctx.offset()
    action, actor = ctx.query("action").strip(), ctx.query("actor").strip()
    query = select(m.AuditEvent).order_by(m.AuditEvent.seq.desc())
    if action:
        query = query.where(m.AuditEvent.action == action)
    if actor:
        query = query.where(m.AuditEvent.actor == actor)
    with ctx.ws.catalog.session() as s:
        found = s.scalars(query.offset(offset).limit(PAGE_SIZE + 1)).all()
        rows = [
            [
                e(x.seq),
                e(fmt_time(x.at)),
                e(x.actor),
                e(x.action),
                e(x.resource),
                f"<code>{e(json.dumps(x.details, default=str)[:_DETAILS_CHARS])}</code>",
                f"<code>{e(x.hash[:12])}</code>",
            ]
            for x in found[:PAGE_SIZE]
        ]
    if ctx.query("verify") == "1":
        check = verify(ctx.ws)
        verdict = (
            f"<p class='ok'>Chain intact: {check.events:,} events, head "
            f"<code>{e(check.head[:16])}</code>.</p>"
            if check.ok
            else f"<p class='bad'>Chain BROKEN at event {e(check.first_bad)}: "
            f"{e(check.reason)}.</p>"
        )
    else:
        top = head(ctx.ws)
        verdict = (
            f"<p>{stat('events', top.get('seq') or 0)} Head <code>"
            f"{e(str(top.get('hash') or '')[:16])}</code>. "
            "<a href='/ui/audit?verify=1'>Verify the whole chain</a></p>"
        )
    form = (
        "<form method='get' action='/ui/audit'><input name='action' placeholder='action' "
        f"value='{e(action)}'> <input name='actor' placeholder='actor' value='{e(actor)}'> "
        "<button>Filter</button></form>"
    )
    body = (
        verdict
        + form
        + table(["seq", "at", "actor", "action", "resource", "details", "hash"], rows)
        + pager("/ui/audit", offset, len(rows), len(found) > PAGE_SIZE, action=action, actor=actor)
    )
    return Page("Audit", body, "/ui/audit")


@ui_page("/ui/cost", "deployments:read")
def cost(ctx: Ctx) -> Page:
    """Spend by area and the cost per model, run, pipeline run or deployment."""
    from plinth.cost.accounting import cost_report, parse_since

    by = ctx.query("by", "model")
    if by not in BY:
        raise ConfigError(f"Cannot group costs by '{by}'.", hint=f"Use one of: {', '.join(BY)}.")
    since_text = ctx.query("since").strip()
    report = cost_report(ctx.ws, by=by, since=parse_since(since_text or None))
    spend = report.spend
    figures = "".join(
        stat(f"{label} $", value)
        for label, value in (
            ("total", spend.total_usd),
            ("runs", spend.runs_usd),
            ("pipelines", spend.pipelines_usd),
            ("serving", spend.serving_usd),
            ("storage", spend.storage_usd),
        )
    )
    items = [item.to_dict() for item in report.items[:500]]
    keys = _columns(items)
    rows = [[e(fmt_num(_cell(item.get(k)))) for k in keys] for item in items]
    choices = "".join(f"<option{' selected' if b == by else ''}>{b}</option>" for b in BY)
    form = (
        "<form method='get' action='/ui/cost'>"
        f"<label>by <select name='by'>{choices}</select></label> "
        f"<label>since <input name='since' size='8' placeholder='30d' value='{e(since_text)}'>"
        "</label> <button>Show</button></form>"
    )
    body = form + f"<p>{figures}</p>" + table(keys, rows, empty="Nothing cost anything yet.")
    return Page("Cost", body, "/ui/cost")


_PREFERRED = (
    "model",
    "run_id",
    "pipeline_run_id",
    "deployment",
    "experiment",
    "pipeline",
    "status",
    "started_at",
    "predictions",
    "per_1000",
    "training_usd",
    "serving_usd",
    "usd",
)


def _columns(items: list[dict[str, object]]) -> list[str]:
    present = {k for item in items for k, v in item.items() if not isinstance(v, list | dict)}
    return [k for k in _PREFERRED if k in present] or sorted(present)[:10]


def _cell(value: object) -> object:
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and "T" in value:
        return fmt_time(value)
    return value
