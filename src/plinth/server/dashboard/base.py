"""What every dashboard page shares: the request context, the layout and small HTML helpers.

Pages are plain functions that take a :class:`Ctx` and return the HTML of the page body; the
:func:`ui_page` decorator registers one on the router and does the rest: it authenticates the
caller (a page request without usable credentials is redirected to ``/ui/login``), checks the
page's permission (403 otherwise), runs the page off the event loop (pages read the catalog)
and wraps the body in the layout. The navigation offers only the pages the caller's role may
read, and a page offers a control that changes state only when the role grants it.

Every string that comes from the catalog goes through :func:`e` (``html.escape``).
"""

from __future__ import annotations

import html
import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from plinth.errors import NotFoundError, PlinthError
from plinth.monitoring.report import _EXTRA_CSS
from plinth.tracking.plot import _CSS, format_number

if TYPE_CHECKING:
    from plinth.governance.access import Principal
    from plinth.workspace import Workspace

__all__ = [
    "NAV",
    "PAGE_SIZE",
    "Ctx",
    "e",
    "fmt_bytes",
    "fmt_num",
    "fmt_time",
    "layout",
    "link",
    "pager",
    "router",
    "table",
    "ui_page",
]

router = APIRouter()

#: Rows per page of every paginated list.
PAGE_SIZE = 50
LOGIN = "/ui/login"

#: The navigation: (path, label, permission that must be granted to see the entry).
NAV: tuple[tuple[str, str, str], ...] = (
    ("/ui", "Overview", "tables:read"),
    ("/ui/tables", "Tables", "tables:read"),
    ("/ui/features", "Features", "features:read"),
    ("/ui/runs", "Runs", "runs:read"),
    ("/ui/models", "Models", "models:read"),
    ("/ui/pipelines", "Pipelines", "runs:read"),
    ("/ui/deployments", "Deployments", "deployments:read"),
    ("/ui/monitoring", "Monitoring", "monitoring:read"),
    ("/ui/lineage", "Lineage", "models:read"),
    ("/ui/audit", "Audit", "tokens:read"),
    ("/ui/cost", "Cost", "deployments:read"),
)

_NAV_CSS = """
body{max-width:1180px}nav.top{display:flex;flex-wrap:wrap;gap:2px 14px;align-items:center;
border-bottom:1px solid #dde2ea;padding:0 0 8px;margin:0 0 14px}nav.top a{color:#1d2330;
text-decoration:none}nav.top a.on{font-weight:600;border-bottom:2px solid #2f6fde}
nav.top .who{margin-left:auto;color:#667085;font-size:12px}a{color:#2f6fde}
.ok{color:#1f7a45}.bad{color:#b42318}.warn{color:#b54708}code{font-size:12px}
form.inline{display:inline}input,select,button{font:inherit;padding:3px 6px}
.pager{margin:8px 0}.pager a{margin-right:12px}pre.card{white-space:pre-wrap;background:#f6f8fb;
padding:10px;border-radius:6px;font-size:12px}.scroll{overflow-x:auto}
.stat{display:inline-block;min-width:140px;margin:4px 18px 4px 0}.stat b{display:block;
font-size:20px}
"""


def e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute.

    Example:
        >>> e("<b>&'")
        '&lt;b&gt;&amp;&#x27;'
    """
    return html.escape("" if value is None else str(value), quote=True)


def fmt_num(value: Any) -> str:
    """A number for a table cell (compact; ``-`` for none), or the value as text.

    Example:
        >>> fmt_num(0.123456), fmt_num(None), fmt_num(3)
        ('0.1235', '-', '3')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def fmt_time(value: datetime | str | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` (``-`` for none).

    Example:
        >>> fmt_time(datetime(2026, 1, 2, 3, 4, 5))
        '2026-01-02 03:04:05'
    """
    if value is None:
        return "-"
    if isinstance(value, str):
        return value.replace("T", " ")[:19]
    return value.strftime("%Y-%m-%d %H:%M:%S")


def fmt_bytes(size: float | None) -> str:
    """A byte count in binary units.

    Example:
        >>> fmt_bytes(1536)
        '1.5 KiB'
    """
    if size is None or not math.isfinite(size):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def link(path: str, text: Any, **query: Any) -> str:
    """An escaped ``<a>`` to a dashboard path with an optional query string.

    Example:
        >>> link("/ui/runs", "runs", q="a b")
        "<a href='/ui/runs?q=a+b'>runs</a>"
    """
    wanted = {k: v for k, v in query.items() if v not in (None, "")}
    href = path + ("?" + urlencode(wanted) if wanted else "")
    return f"<a href='{e(href)}'>{e(text)}</a>"


def table(head: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str = "None yet.") -> str:
    """An HTML table; cells are HTML already (escape with :func:`e` when building them).

    Example:
        >>> "<td>&lt;x&gt;</td>" in table(["a"], [[e("<x>")]])
        True
    """
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f"<p class='muted'>{e(empty)}</p>"
    cells = "".join(f"<th>{e(h)}</th>" for h in head)
    return (
        f'<div class="scroll"><table><thead><tr>{cells}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def pager(path: str, offset: int, shown: int, more: bool, **query: Any) -> str:
    """Previous / next links of a paginated list.

    Example:
        >>> "offset=50" in pager("/ui/runs", 0, 50, True)
        True
    """
    links = []
    if offset > 0:
        links.append(link(path, "\u2190 previous", offset=max(offset - PAGE_SIZE, 0), **query))
    if more:
        links.append(link(path, "next \u2192", offset=offset + PAGE_SIZE, **query))
    span = f"rows {offset + 1:,}\u2013{offset + shown:,}" if shown else "no rows"
    return f"<div class='pager muted'>{span} {' '.join(links)}</div>"


@dataclass
class Ctx:
    """One page request: the workspace, the caller, its project and the request itself."""

    request: Request
    ws: Workspace
    principal: Principal

    @property
    def project(self) -> str:
        """The project the caller's permissions are checked in."""
        return self.ws.settings.project

    def can(self, permission: str) -> bool:
        """Whether the caller's role grants ``permission`` in the workspace's project.

        Example:
            >>> # ctx.can("models:promote")
        """
        return self.principal.can(permission, self.project)

    def query(self, name: str, default: str = "") -> str:
        """A query parameter (``default`` when absent)."""
        return self.request.query_params.get(name, default)

    def offset(self) -> int:
        """The ``offset`` query parameter of a paginated list, clamped to 0 or more."""
        try:
            return max(int(self.query("offset", "0")), 0)
        except ValueError:
            return 0

    def path(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])


def workspace_of(request: Request) -> Workspace:
    """The workspace the server was built over (``app.state.ws``)."""
    state = request.app.state
    ws = getattr(state, "ws", None)
    if ws is None:
        ws = getattr(getattr(state, "server", None), "ws", None)
    if ws is None:
        raise RuntimeError("The dashboard needs the workspace as app.state.ws.")
    return ws


async def principal_for(request: Request) -> Principal:
    """The caller of a request (``plinth.server.auth.principal_of``), sync or async."""
    from plinth.server.auth import principal_of

    found: Any = principal_of(request)
    if inspect.isawaitable(found):
        found = await found
    return found


def layout(ctx: Ctx | None, title: str, body: str, *, current: str = "") -> str:
    """The whole page: head, navigation (only what the caller may read), title and body.

    Example:
        >>> "<nav" not in layout(None, "Login", "<p>x</p>")
        True
    """
    nav = ""
    if ctx is not None:
        items = []
        for path, label, permission in NAV:
            if ctx.can(permission):
                on = " class='on'" if path == current else ""
                items.append(f"<a href='{path}'{on}>{e(label)}</a>")
        who = f"{ctx.principal.subject} ({_role(ctx)})"
        out = " \u00b7 <a href='/ui/logout'>log out</a>" if ctx.ws.settings.auth else ""
        nav = f"<nav class='top'>{''.join(items)}<span class='who'>{e(who)}{out}</span></nav>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{e(title)} \u00b7 Plinth</title>"
        f"<style>{_CSS}{_EXTRA_CSS}{_NAV_CSS}</style></head><body>"
        f"{nav}<h1>{e(title)}</h1>{body}</body></html>"
    )


def _role(ctx: Ctx) -> str:
    if ctx.principal.kind == "open":
        return "everything allowed"
    return ctx.principal.roles.get(ctx.project) or "no role"


@dataclass(frozen=True)
class Page:
    """What a page function returns: its title, its body and the navigation entry it is under."""

    title: str
    body: str
    nav: str = ""


PageFunction = Callable[[Ctx], "Page | Response"]


def error_page(ctx: Ctx | None, status: int, title: str, message: str) -> HTMLResponse:
    """A page that says what went wrong, with the status code."""
    return HTMLResponse(layout(ctx, title, f"<p>{e(message)}</p>"), status_code=status)


async def context(request: Request) -> Ctx | Response:
    """The request's :class:`Ctx`, or the redirect to the login page for an unknown caller."""
    from plinth.governance.access import Unauthenticated

    try:
        principal = await principal_for(request)
    except Unauthenticated:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{LOGIN}?{urlencode({'next': target})}", status_code=303)
    return Ctx(request, workspace_of(request), principal)


def declared(permission: str) -> Callable[[], None]:
    """A dependency that only declares the permission a dashboard route checks itself (the
    route answers an unknown caller with a redirect to the login page, not a JSON 401), so
    that the server's route table names it.

    Example:
        >>> declared("runs:read").plinth_permission
        'runs:read'
    """

    def dependency() -> None:
        return None

    dependency.plinth_permission = permission  # type: ignore[attr-defined]
    dependency.__name__ = f"declares_{permission.replace(':', '_')}"
    return dependency


def ui_page(
    path: str, permission: str, *, methods: Sequence[str] = ("GET",)
) -> Callable[[PageFunction], PageFunction]:
    """Register a page function on the dashboard router under ``path``, guarded by
    ``permission``.

    Example:
        >>> # @ui_page("/ui/runs", "runs:read")
        >>> # def runs(ctx: Ctx) -> Page: return Page("Runs", "<p>...</p>", "/ui/runs")
    """
    from plinth.governance.roles import check_permission

    check_permission(permission)

    def register(function: PageFunction) -> PageFunction:
        async def endpoint(request: Request) -> Response:
            ctx = await context(request)
            if isinstance(ctx, Response):
                return ctx
            if not ctx.can(permission):
                return error_page(
                    ctx, 403, "Not allowed", f"Your role does not grant {permission} here."
                )
            try:
                result = await run_in_threadpool(function, ctx)
            except NotFoundError as exc:
                return error_page(ctx, 404, "Not found", exc.message)
            except PlinthError as exc:
                status = getattr(exc, "status_code", 400)
                status = status if isinstance(status, int) and 400 <= status < 500 else 400
                return error_page(ctx, status, "Cannot show this page", exc.message)
            if isinstance(result, Response):
                return result
            return HTMLResponse(layout(ctx, result.title, result.body, current=result.nav))

        endpoint.__name__ = f"ui_{function.__name__}"
        endpoint.__doc__ = function.__doc__
        router.add_api_route(
            path,
            endpoint,
            methods=list(methods),
            response_class=HTMLResponse,
            include_in_schema=False,
            dependencies=[Depends(declared(permission))],
        )
        return function

    return register


def stat(label: str, value: Any) -> str:
    """A big number with a label (the overview's and deployments' figures).

    Example:
        >>> "<b>3</b>" in stat("runs", 3)
        True
    """
    return f"<span class='stat'><b>{e(fmt_num(value))}</b>{e(label)}</span>"


def kv(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """A two-column table of keys and escaped values.

    Example:
        >>> "<td>lr</td>" in kv({"lr": 0.1})
        True
    """
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return table(["", ""], ([e(k), e(fmt_num(v))] for k, v in items), empty="Nothing recorded.")


AsyncEndpoint = Callable[[Request], Awaitable[Response]]
