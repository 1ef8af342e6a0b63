"""Who calls the control plane, and may they: the principal of a request and the permission
dependency every API route declares.

A request proves who it is with ``Authorization: Bearer plt_...`` (or an OIDC JWT), or with
the ``plinth_token`` cookie the dashboard sets at login. With authentication off (the
embedded default) every caller acts as the workspace's own user
(:func:`plinth.governance.access.local_principal`), whose role still decides what it may do.

Example:
    >>> # @router.get("/things", dependencies=[Depends(require("models:read"))])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from plinth.governance.access import Access, Principal, local_principal
from plinth.governance.roles import check_permission

__all__ = ["ANY_PRINCIPAL", "COOKIE", "bearer", "permission_of", "principal_of", "require"]

#: The cookie the dashboard keeps the caller's token in.
COOKIE = "plinth_token"
#: The permission name of routes any authenticated caller may use (``/whoami``).
ANY_PRINCIPAL = "any"
_LOCAL_TTL_S = 5.0

#: Documents the bearer scheme in the OpenAPI spec; the header is read by :func:`principal_of`.
bearer = HTTPBearer(auto_error=False, description="A Plinth token (plt_...) or an OIDC JWT.")


def _header(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        return header
    cookie = request.cookies.get(COOKIE)
    return f"Bearer {cookie}" if cookie else None


def _access(request: Request) -> Access:
    return request.app.state.access


def _local(request: Request) -> Principal:
    state = request.app.state
    cached = getattr(state, "local_principal", None)
    now = time.monotonic()
    if cached is None or cached[0] <= now:
        cached = (now + _LOCAL_TTL_S, local_principal(state.ws))
        state.local_principal = cached
    return cached[1]


def principal_of(request: Request) -> Principal:
    """The caller of ``request``: from its bearer token or ``plinth_token`` cookie, or the
    workspace's own user when authentication is off. Raises
    :class:`~plinth.governance.access.Unauthenticated` (401) for a missing or bad credential.

    Example:
        >>> # principal = principal_of(request); principal.subject
    """
    access = _access(request)
    if not access.enabled:
        return _local(request)
    return access.authenticate(_header(request))


async def _principal_async(request: Request) -> Principal:
    access = _access(request)
    client = request.client.host if request.client else None
    if not access.enabled:
        if access.limiter is not None:
            access.limiter.enforce(f"client:{client}")
        hit = getattr(request.app.state, "local_principal", None)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return await asyncio.to_thread(_local, request)
    try:
        principal = await access.authenticate_async(_header(request))
    except Exception:
        if access.limiter is not None:  # failed attempts count against the address
            access.limiter.enforce(f"client:{client}")
        raise
    if access.limiter is not None:
        access.limiter.enforce(principal.rate_key)
    return principal


def require(permission: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency that authenticates the caller (401), applies the rate limit
    (429) and checks ``permission`` in the workspace's project (403); it returns the
    principal. ``require("any")`` admits every authenticated caller.

    Example:
        >>> dependency = require("models:promote")
        >>> permission_of(dependency)
        'models:promote'
    """
    if permission != ANY_PRINCIPAL:
        check_permission(permission)

    async def dependency(request: Request, _: Any = Depends(bearer)) -> Principal:
        principal = await _principal_async(request)
        if permission != ANY_PRINCIPAL:
            _access(request).authorize(principal, permission)
        return principal

    dependency.plinth_permission = permission  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


def permission_of(dependency: Any) -> str | None:
    """The permission a :func:`require` dependency checks, or ``None`` for anything else.

    Example:
        >>> permission_of(require("runs:read"))
        'runs:read'
    """
    return getattr(dependency, "plinth_permission", None)
