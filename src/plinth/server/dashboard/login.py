"""Logging in and out of the dashboard: paste a token, get an HttpOnly cookie.

``POST /ui/login`` validates the pasted token like any API request would and then sets the
``plinth_token`` cookie (HttpOnly, SameSite=Strict, Secure over HTTPS), which the server
accepts in place of an ``Authorization`` header. With authentication off there is nothing to
log in with: the page says so and links straight to the dashboard.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from plinth.server.dashboard.base import LOGIN, e, layout, router, workspace_of

__all__ = ["COOKIE", "MAX_FORM_BYTES", "read_form", "safe_next"]

#: The cookie the token is kept in.
COOKIE = "plinth_token"
#: The largest form body read (a token is well under this).
MAX_FORM_BYTES = 32_768


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (first value of each),
    reading at most :data:`MAX_FORM_BYTES`.

    Example:
        >>> # fields = await read_form(request); fields.get("token")
    """
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    text = body.decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items() if v}


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path only (never another site).

    Example:
        >>> safe_next("/ui/runs?offset=50"), safe_next("//evil.example/"), safe_next(None)
        ('/ui/runs?offset=50', '/ui', '/ui')
    """
    if not target or not target.startswith("/ui") or "\\" in target or "//" in target:
        return "/ui"
    return target


def _login_page(message: str = "", next_path: str = "/ui", status: int = 200) -> HTMLResponse:
    note = f"<p class='bad'>{e(message)}</p>" if message else ""
    body = (
        f"{note}<form method='post' action='{LOGIN}'>"
        f"<input type='hidden' name='next' value='{e(next_path)}'>"
        "<p><label>API token<br><input type='password' name='token' size='60' "
        "autocomplete='off' placeholder='plt_...' autofocus></label></p>"
        "<p><button type='submit'>Log in</button></p></form>"
        "<p class='muted'>Create a token with <code>plinth token create NAME --role viewer"
        "</code>. The token is kept in an HttpOnly cookie for this site only.</p>"
    )
    return HTMLResponse(layout(None, "Log in to Plinth", body), status_code=status)


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """The server's root leads to the dashboard."""
    return RedirectResponse("/ui", status_code=307)


@router.get(LOGIN, include_in_schema=False, response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    """The login form (with authentication off: a note and a link in)."""
    ws = workspace_of(request)
    next_path = safe_next(request.query_params.get("next"))
    if not ws.settings.auth:
        body = (
            "<p>Authentication is off (the embedded default): there is nothing to log in "
            f"with. <a href='{e(next_path)}'>Open the dashboard</a>.</p>"
            "<p class='muted'>Set PLINTH_AUTH=true to require tokens.</p>"
        )
        return HTMLResponse(layout(None, "Log in to Plinth", body))
    return _login_page(next_path=next_path)


@router.post(LOGIN, include_in_schema=False, response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the pasted token; on success set the cookie and go on to the dashboard."""
    from starlette.concurrency import run_in_threadpool

    from plinth.governance.access import AccessUnavailable, Unauthenticated, authenticate

    ws = workspace_of(request)
    fields = await read_form(request)
    next_path = safe_next(fields.get("next"))
    if not ws.settings.auth:
        return RedirectResponse(next_path, status_code=303)
    token = fields.get("token", "").strip()
    if not token:
        return _login_page("Paste a token.", next_path, 400)
    try:
        await run_in_threadpool(authenticate, request.app.state, f"Bearer {token}")
    except Unauthenticated as exc:
        return _login_page(exc.message, next_path, 401)
    except AccessUnavailable as exc:
        return _login_page(exc.message, next_path, 503)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/ui/logout", include_in_schema=False)
async def logout() -> RedirectResponse:
    """Forget the token cookie and return to the login page."""
    response = RedirectResponse(LOGIN, status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
