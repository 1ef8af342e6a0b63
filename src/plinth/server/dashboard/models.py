"""Dashboard pages over the model registry: models, one model's versions, aliases, gate
decisions and model card, and the one control that changes state: moving an alias.

The alias form is drawn only for a caller whose role grants ``models:promote``; the handler it
posts to checks the permission again (403 otherwise), refuses a cross-site request and records
the move under the caller's name, audited like ``plinth models alias set``.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from plinth.catalog import models as m
from plinth.server.dashboard.base import (
    PAGE_SIZE,
    Ctx,
    Page,
    context,
    declared,
    e,
    error_page,
    fmt_num,
    fmt_time,
    link,
    pager,
    router,
    table,
    ui_page,
)

__all__ = ["PROMOTE", "model_detail", "models", "move_alias"]

#: The permission the alias form needs.
PROMOTE = "models:promote"
_CARD_LIMIT = 60_000


@ui_page("/ui/models", "models:read")
def models(ctx: Ctx) -> Page:
    """Registered models with their newest version and aliases."""
    rows = [
        [
            link(f"/ui/models/{s.name}", s.name),
            e(s.version_count),
            e(s.latest_version if s.latest_version is not None else "-"),
            e(fmt_time(s.latest_at)),
            e(", ".join(f"{a} \u2192 v{v}" for a, v in sorted(s.aliases.items())) or "-"),
            e(s.description or ""),
        ]
        for s in ctx.ws.models.list()
    ]
    head = ["model", "versions", "newest", "registered", "aliases", "description"]
    return Page("Models", table(head, rows, empty="No model is registered."), "/ui/models")


def _alias_form(name: str, aliases: dict[str, int], versions: list[int]) -> str:
    options = "".join(f"<option value='{v}'>{v}</option>" for v in versions)
    known = "".join(f"<option value='{e(a)}'></option>" for a in sorted(aliases))
    return (
        f"<form class='alias-move' method='post' action='/ui/models/{e(name)}/alias'>"
        "<label>Move alias <input name='alias' list='aliases' required size='14' "
        "placeholder='champion'></label>"
        f"<datalist id='aliases'>{known}</datalist> "
        f"<label>to version <select name='version'>{options}</select></label> "
        "<label>reason <input name='reason' size='30'></label> "
        "<button type='submit'>Move alias</button></form>"
    )


@ui_page("/ui/models/{name}", "models:read")
def model_detail(ctx: Ctx) -> Page:
    """One model: versions (paginated), aliases and their history, gate decisions, card."""
    from plinth.errors import NotFoundError, PlinthError

    name, offset = ctx.path("name"), ctx.offset()
    with ctx.ws.catalog.session() as s:
        if s.scalar(select(m.RegisteredModel.id).where(m.RegisteredModel.name == name)) is None:
            raise NotFoundError(f"No model is named '{name}'.")
        versions = s.scalars(
            select(m.ModelVersion)
            .where(m.ModelVersion.model_name == name)
            .order_by(m.ModelVersion.version.desc())
            .offset(offset)
            .limit(PAGE_SIZE + 1)
        ).all()
        all_versions = list(
            s.scalars(
                select(m.ModelVersion.version)
                .where(m.ModelVersion.model_name == name)
                .order_by(m.ModelVersion.version.desc())
                .limit(500)
            )
        )
        aliases = {
            a.alias: a
            for a in s.scalars(select(m.ModelAlias).where(m.ModelAlias.model_name == name))
        }
        events = s.scalars(
            select(m.ModelAliasEvent)
            .where(m.ModelAliasEvent.model_name == name)
            .order_by(m.ModelAliasEvent.id.desc())
            .limit(30)
        ).all()
        gates = s.scalars(
            select(m.GateDecision)
            .where(m.GateDecision.model_name == name)
            .order_by(m.GateDecision.id.desc())
            .limit(30)
        ).all()
        version_rows = [
            [
                e(v.version),
                e(v.flavor),
                link(f"/ui/runs/{v.run_id}", v.run_id) if v.run_id else "-",
                e(", ".join(f"{k} {fmt_num(x)}" for k, x in list((v.metrics or {}).items())[:4])),
                e(fmt_time(v.created_at)),
                e(v.created_by),
                link("/ui/lineage", "lineage", object=f"{name}:{v.version}"),
            ]
            for v in versions[:PAGE_SIZE]
        ]
        alias_rows = [
            [
                e(a.alias),
                e(a.version),
                e(fmt_time(a.set_at)),
                e(a.set_by),
                link(f"/ui/monitoring/{name}", "monitoring", alias=a.alias),
            ]
            for a in sorted(aliases.values(), key=lambda a: a.alias)
        ]
        event_rows = [
            [
                e(fmt_time(x.at)),
                e(x.alias),
                e(x.action),
                e(x.previous_version if x.previous_version is not None else "-"),
                e(x.version if x.version is not None else "-"),
                e(x.by),
                e(x.reason or ""),
            ]
            for x in events
        ]
        gate_rows = [
            [
                e(fmt_time(g.decided_at)),
                e(g.candidate_version),
                e(g.champion_version if g.champion_version is not None else "-"),
                f"<span class='{'ok' if g.passed else 'bad'}'>"
                f"{'passed' if g.passed else 'refused'}</span>",
                e("; ".join(str(r) for r in (g.reasons or []))),
                link(f"/ui/pipelines/{g.pipeline_run_id}", g.pipeline_run_id)
                if g.pipeline_run_id
                else "-",
            ]
            for g in gates
        ]
    shown = "champion" if "champion" in aliases else None
    uri = f"{name}@{shown}" if shown else (f"{name}:{all_versions[0]}" if all_versions else None)
    card = "<p class='muted'>No version yet.</p>"
    if uri is not None:
        try:
            text = ctx.ws.models.card(uri).markdown(annex=False)
            if len(text) > _CARD_LIMIT:
                text = text[:_CARD_LIMIT] + "\n\u2026 (cut; see 'plinth models card')"
            card = f"<p class='muted'>{e(uri)}</p><pre class='card'>{e(text)}</pre>"
        except PlinthError as exc:
            card = f"<p class='muted'>No card: {e(exc.message)}</p>"
    form = ""
    if ctx.can(PROMOTE) and all_versions:
        form = _alias_form(name, {a: x.version for a, x in aliases.items()}, all_versions)
    body = (
        "<h2>Aliases</h2>"
        + table(["alias", "version", "set", "by", ""], alias_rows, empty="No alias is set.")
        + form
        + "<h2>Versions</h2>"
        + table(["version", "flavor", "run", "metrics", "registered", "by", ""], version_rows)
        + pager(f"/ui/models/{name}", offset, len(version_rows), len(versions) > PAGE_SIZE)
        + "<h2>Gate decisions</h2>"
        + table(
            ["decided", "candidate", "champion", "outcome", "reasons", "pipeline run"],
            gate_rows,
            empty="No gate has decided on this model.",
        )
        + "<h2>Alias history</h2>"
        + table(["at", "alias", "action", "from", "to", "by", "reason"], event_rows)
        + "<h2>Model card</h2>"
        + card
    )
    return Page(f"Model {name}", body, "/ui/models")


def _same_site(request: Request) -> bool:
    """Whether a form post came from this site (no ``Origin`` header counts as same site:
    the SameSite=Strict cookie already keeps other sites' posts unauthenticated)."""
    from urllib.parse import urlsplit

    headers = request.headers
    origin = headers.get("origin")
    if not origin or origin == "null":
        return origin != "null"
    return urlsplit(origin).netloc == headers.get("host", "")


@router.post(
    "/ui/models/{name}/alias",
    include_in_schema=False,
    dependencies=[Depends(declared(PROMOTE))],
)
async def move_alias(request: Request) -> Response:
    """Move an alias of a model to a version (the dashboard's alias form posts here).

    Example:
        >>> # POST /ui/models/delay/alias  alias=champion&version=2&reason=better+AUC
    """
    from fastapi.responses import RedirectResponse
    from starlette.concurrency import run_in_threadpool

    from plinth.errors import PlinthError
    from plinth.server.dashboard.login import read_form

    ctx = await context(request)
    if not isinstance(ctx, Ctx):
        return ctx
    if not ctx.can(PROMOTE):
        return error_page(ctx, 403, "Not allowed", f"Your role does not grant {PROMOTE} here.")
    if not _same_site(ctx.request):
        return error_page(ctx, 403, "Not allowed", "The form was posted from another site.")
    name = ctx.path("name")
    fields = await read_form(ctx.request)
    alias, reason = fields.get("alias", "").strip(), fields.get("reason", "").strip() or None
    try:
        version = int(fields.get("version", ""))
    except ValueError:
        return error_page(ctx, 400, "Cannot move the alias", "Choose a version number.")

    def change() -> None:
        ctx.ws.models.set_alias(name, alias, version, reason, actor=ctx.principal.subject)

    try:
        await run_in_threadpool(change)
    except PlinthError as exc:
        status = getattr(exc, "status_code", 400)
        status = status if isinstance(status, int) and 400 <= status < 500 else 400
        return error_page(ctx, status, "Cannot move the alias", exc.message)
    return RedirectResponse(f"/ui/models/{name}", status_code=303)
