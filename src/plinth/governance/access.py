"""Who is calling, and may they: authentication and authorization for the HTTP APIs.

:func:`authenticate` turns an ``Authorization: Bearer ...`` header into a :class:`Principal`:
a Plinth token (``plt_...``, looked up by its hash) or, when OIDC is configured, a JWT from
the identity provider (see :mod:`plinth.governance.oidc`). Missing, unknown, malformed,
expired and revoked credentials raise :class:`Unauthenticated` (HTTP 401 with
``WWW-Authenticate: Bearer``). :func:`authorize` checks one permission of the principal's role
in a project (see :mod:`plinth.governance.roles`) and raises :class:`Forbidden` (403).

Steady state costs no catalog query: an :class:`Access` keeps each credential's outcome,
principal or refusal, for five seconds (and never past the token's expiry), so a revoked token
stops working within five seconds and a new role binding takes effect as fast. A lookup that
misses the cache is one catalog transaction, run off the event loop by the servers.

Authentication can be off (``PLINTH_AUTH=false``, the default) only with the embedded SQLite
catalog: :func:`require_auth_allowed` refuses a shared catalog without it. With it off, every
caller is the open principal, which every permission check lets through.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from plinth.errors import ConfigError, PlinthError
from plinth.governance import roles
from plinth.governance.ratelimit import RateLimited, RateLimiter

if TYPE_CHECKING:
    from plinth._core.settings import Settings
    from plinth.governance.oidc import OidcVerifier
    from plinth.workspace import Workspace

__all__ = [
    "CACHE_TTL_S",
    "OPEN",
    "Access",
    "AccessUnavailable",
    "Forbidden",
    "Principal",
    "RateLimited",
    "Unauthenticated",
    "auth_status",
    "authenticate",
    "authorize",
    "local_principal",
    "require_auth_allowed",
]

#: How long an authentication outcome (principal or refusal) is reused.
CACHE_TTL_S = 5.0
_MAX_ENTRIES = 10_000
_MAX_CREDENTIAL = 16_384


class Unauthenticated(PlinthError):
    """No usable credential: missing, malformed, unknown, expired or revoked (HTTP 401)."""

    status_code = 401
    #: Sent with the 401 answer, as RFC 6750 asks.
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="plinth"'}


class AccessUnavailable(PlinthError):
    """The catalog cannot be asked about a credential just now (HTTP 503, retry)."""

    status_code = 503
    retry_after = 1


class Forbidden(PlinthError):
    """The caller is known but its role does not grant what it asked for (HTTP 403)."""

    status_code = 403


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who it acts as, how it proved it, its role per project.

    ``subject`` is the token's owner or ``oidc:<sub>``; ``roles`` maps project to role, already
    resolved (token binding over owner binding over the embedded rule; OIDC binding over the
    ``plinth_role`` claim). ``kind`` is ``token``, ``oidc``, ``local`` or ``open`` (auth off).

    Example:
        >>> viewer = Principal("ana", "token", {"default": "viewer"}, token_id="tok_1")
        >>> viewer.can("models:promote", "default")
        False
    """

    subject: str
    kind: str
    roles: Mapping[str, str] = field(default_factory=dict)
    token_id: str | None = None
    expires_at: float | None = None

    @property
    def name(self) -> str:
        """How messages name the caller."""
        return f"token {self.token_id} of '{self.subject}'" if self.token_id else repr(self.subject)

    @property
    def rate_key(self) -> str:
        """The key the caller's rate limit is counted under: its token, else its subject."""
        return self.token_id or self.subject

    def can(self, permission: str, project: str) -> bool:
        """Whether the principal's role in ``project`` grants ``permission``.

        Example:
            >>> OPEN.can("tokens:admin", "any")
            True
        """
        roles.check_permission(permission)
        if self.kind == "open":
            return True
        role = self.roles.get(project)
        return role is not None and permission in roles.PERMISSIONS[role]


#: The caller when authentication is off: everything is allowed.
OPEN = Principal("anonymous", "open")


def _lowest_role(permission: str) -> str:
    return next(r for r in roles.ROLES if permission in roles.PERMISSIONS[r])


def authorize(principal: Principal, permission: str, project: str) -> None:
    """Raise :class:`Forbidden` unless ``principal``'s role in ``project`` grants
    ``permission`` (``RESOURCE:ACTION``, e.g. ``models:promote``).

    Example:
        >>> viewer = Principal("ana", "token", {"default": "viewer"})
        >>> authorize(viewer, "models:read", "default")
        >>> authorize(viewer, "models:promote", "default")
        Traceback (most recent call last):
        ...
        plinth.governance.access.Forbidden: 'ana' may not models:promote in project ...
    """
    if principal.can(permission, project):
        return
    role = principal.roles.get(project)
    needed = _lowest_role(permission)
    grantee = f"token:{principal.token_id}" if principal.token_id else principal.subject
    why = f"its role there is {role}" if role else "it holds no role there"
    raise Forbidden(
        f"{principal.name} may not {permission} in project '{project}': {why}.",
        hint=f"{needed.capitalize()} is the least role that grants it; an admin can run "
        f"'plinth role grant {grantee} {needed} --project {project}'.",
    )


def require_auth_allowed(settings: Settings, catalog_url: str) -> None:
    """Refuse to run with authentication off unless the catalog is the embedded SQLite file.

    Example:
        >>> from plinth._core.settings import Settings
        >>> require_auth_allowed(Settings(home="/tmp/ws"), "sqlite:////tmp/ws/catalog.db")
    """
    from plinth._core.urls import redact_url

    if settings.auth or roles.is_embedded(catalog_url):
        return
    raise ConfigError(
        f"Authentication is off (PLINTH_AUTH=false) with the shared catalog "
        f"'{redact_url(catalog_url)}': anyone who can reach the server could read and change it.",
        hint="Set PLINTH_AUTH=true and give callers tokens ('plinth token create NAME --role "
        "viewer'); auth may be off only with the embedded SQLite catalog.",
    )


def auth_status(settings: Settings) -> str:
    """One line for a server to print at start: whether authentication is on, and how.

    Example:
        >>> from plinth._core.settings import Settings
        >>> auth_status(Settings(home="/tmp/ws")).startswith("Authentication is off")
        True
    """
    if not settings.auth:
        return (
            "Authentication is off (embedded default): anyone who can reach this server can "
            "use it. Set PLINTH_AUTH=true to require tokens."
        )
    oidc = f" or an OIDC JWT from {settings.oidc_issuer}" if settings.oidc_issuer else ""
    limit = f"; at most {settings.rate_limit:g} requests/s per token" if settings.rate_limit else ""
    return (
        f"Authentication is on: requests need a plt_ token{oidc} with a role in project "
        f"'{settings.project}'{limit}."
    )


def _credential(header: str | None) -> str:
    if not header:
        raise Unauthenticated(
            "The request has no credentials.",
            hint="Send 'Authorization: Bearer plt_...' (create a token with 'plinth token "
            "create NAME').",
        )
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise Unauthenticated(
            "The Authorization header is not 'Bearer <token>'.",
            hint="Send 'Authorization: Bearer plt_...' or an OIDC JWT.",
        )
    if len(value) > _MAX_CREDENTIAL or not value.isascii() or any(c.isspace() for c in value):
        raise Unauthenticated("The bearer token is malformed.")
    return value


class Access:
    """Authentication and authorization for one workspace, with the outcome cache, the OIDC
    verifier and the rate limiter. Servers build one at start; :meth:`of` shares one per
    workspace.

    Example:
        >>> # access = Access.of(ws)
        >>> # principal = access.authenticate("Bearer plt_...")
        >>> # access.authorize(principal, "predictions:read")
    """

    def __init__(self, ws: Workspace, *, ttl_s: float = CACHE_TTL_S) -> None:
        from plinth.governance.oidc import OidcVerifier

        settings = ws.settings
        require_auth_allowed(settings, settings.catalog_url)
        self.ws = ws
        self.settings = settings
        self.enabled = settings.auth
        self.project = settings.project
        self.ttl_s = ttl_s
        self.oidc: OidcVerifier | None = (
            OidcVerifier.from_settings(settings) if self.enabled else None
        )
        self.limiter = RateLimiter(settings.rate_limit) if settings.rate_limit > 0 else None
        self._cache: dict[bytes, tuple[float, Principal | Unauthenticated]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, ws: Workspace) -> Access:
        """The workspace's shared :class:`Access` (built on first use).

        Example:
            >>> # Access.of(ws) is Access.of(ws)
            >>> # True
        """
        with _SHARED_LOCK:
            found = _SHARED.get(ws)
            if found is None:
                found = _SHARED[ws] = cls(ws)
            return found

    # -- authentication ----------------------------------------------------------------------

    def cached(self, header: str | None) -> Principal | None:
        """The cached outcome for ``header``: its principal, ``None`` on a miss; a cached
        refusal is raised again. Costs a hash and a dictionary lookup."""
        if not self.enabled:
            return OPEN
        if not header or len(header) > _MAX_CREDENTIAL + 16:
            return None
        entry = self._cache.get(hashlib.sha256(header.encode("latin-1", "replace")).digest())
        if entry is None or entry[0] <= time.time():
            return None
        outcome = entry[1]
        if isinstance(outcome, Unauthenticated):  # a fresh copy: no traceback piles up
            raise Unauthenticated(outcome.message, hint=outcome.hint)
        return outcome

    def authenticate(self, header: str | None) -> Principal:
        """The principal ``header`` proves, from the cache or the catalog; raise
        :class:`Unauthenticated` otherwise.

        Example:
            >>> # Access.of(ws).authenticate("Bearer plt_...").subject
        """
        hit = self.cached(header)
        if hit is not None:
            return hit
        from sqlalchemy.exc import SQLAlchemyError

        key = hashlib.sha256((header or "").encode("latin-1", "replace")).digest()
        now = time.time()
        try:
            principal = self._resolve(_credential(header), now)
        except Unauthenticated as exc:
            self._remember(key, now + self.ttl_s, exc)
            raise
        except SQLAlchemyError as exc:
            raise AccessUnavailable(
                f"Cannot check the credentials: the catalog is unavailable ({type(exc).__name__}).",
                hint="Retry in a moment.",
            ) from exc
        deadline = now + self.ttl_s
        if principal.expires_at is not None:
            deadline = min(deadline, principal.expires_at)
        self._remember(key, deadline, principal)
        return principal

    async def authenticate_async(self, header: str | None) -> Principal:
        """:meth:`authenticate` for a server: a cache hit answers at once; a miss runs on a
        worker thread so that the event loop never waits on the catalog.

        Example:
            >>> # principal = await access.authenticate_async(request_header)
        """
        hit = self.cached(header)
        if hit is not None:
            return hit
        _credential(header)  # a malformed header is refused without a thread
        return await asyncio.to_thread(self.authenticate, header)

    def forget(self) -> None:
        """Drop every cached outcome (after revoking a token in this process, say)."""
        with self._lock:
            self._cache.clear()

    def _remember(self, key: bytes, deadline: float, outcome: Principal | Unauthenticated) -> None:
        with self._lock:
            if len(self._cache) >= _MAX_ENTRIES:
                now = time.time()
                for old in [k for k, (d, _) in self._cache.items() if d <= now]:
                    del self._cache[old]
                while len(self._cache) >= _MAX_ENTRIES:
                    del self._cache[next(iter(self._cache))]
            self._cache[key] = (deadline, outcome)

    def _resolve(self, credential: str, now: float) -> Principal:
        from plinth.governance.tokens import TOKEN_PREFIX

        if credential.startswith(TOKEN_PREFIX):
            return self._token_principal(credential, now)
        if credential.count(".") == 2:
            return self._oidc_principal(credential)
        raise Unauthenticated(
            "The bearer token is neither a Plinth token (plt_...) nor a JWT.",
            hint="Create a token with 'plinth token create NAME'.",
        )

    def _token_principal(self, secret: str, now: float) -> Principal:
        from datetime import UTC, datetime

        from plinth.governance import tokens

        moment = datetime.fromtimestamp(now, UTC)
        with self.ws.catalog.session() as session:
            info = tokens.lookup(session, secret, moment)
            if info is None:
                raise Unauthenticated(
                    "The token is not known.",
                    hint="Check it was copied whole; 'plinth token list' shows the tokens.",
                )
            status = info.status(moment)
            if status != "active":
                what = "was revoked" if status == "revoked" else "expired"
                when = info.revoked_at if status == "revoked" else info.expires_at
                raise Unauthenticated(
                    f"Token {info.id} ({info.display}) {what} at {when:%Y-%m-%d %H:%M} UTC.",
                    hint="Create a new one with 'plinth token create NAME'.",
                )
            own = f"token:{info.id}"
            found = roles.bindings_of(session, [info.owner, own])
        merged = {**found[info.owner], **found[own]}
        self._add_implicit(merged, info.owner)
        expires = info.expires_at.timestamp() if info.expires_at else None
        return Principal(info.owner, "token", merged, token_id=info.id, expires_at=expires)

    def _oidc_principal(self, jwt: str) -> Principal:
        from plinth.governance.oidc import InvalidJWT

        if self.oidc is None:
            raise Unauthenticated(
                "The bearer token is a JWT but OIDC is not configured on this server.",
                hint="Use a Plinth token (plt_...), or set PLINTH_OIDC_ISSUER, "
                "PLINTH_OIDC_AUDIENCE and PLINTH_OIDC_JWKS_URL.",
            )
        try:
            identity = self.oidc.verify(jwt)
        except InvalidJWT as exc:
            raise Unauthenticated(exc.message, hint=exc.hint) from exc
        except ConfigError as exc:  # the issuer's keys are unavailable: not the caller's fault
            raise Unauthenticated(
                f"The JWT cannot be verified now: {exc.message}",
                hint="Retry later, or use a Plinth token.",
            ) from exc
        with self.ws.catalog.session() as session:
            found = roles.bindings_of(session, [identity.subject])[identity.subject]
        if self.project not in found and identity.claimed_role in roles.PERMISSIONS:
            found[self.project] = identity.claimed_role
        return Principal(identity.subject, "oidc", found, expires_at=identity.expires_at)

    def _add_implicit(self, found: dict[str, str], subject: str) -> None:
        if self.project not in found:
            implicit = roles.implicit_role(self.settings, subject, self.project)
            if implicit is not None:
                found[self.project] = implicit

    # -- authorization and limits ------------------------------------------------------------

    def authorize(self, principal: Principal, permission: str, project: str | None = None) -> None:
        """:func:`authorize` in this workspace's project unless told otherwise."""
        authorize(principal, permission, project or self.project)

    async def guard(self, header: str | None, permission: str, client: str | None) -> Principal:
        """Everything an HTTP request goes through: authenticate (401), rate-limit (429) and
        authorize (403). With auth off, only the rate limit applies, per client address; failed
        authentications count against the client address too, which slows guessing.

        Example:
            >>> # principal = await access.guard(header, "predictions:read", "10.0.0.7")
        """
        if not self.enabled:
            if self.limiter is not None:
                self.limiter.enforce(f"client:{client}")
            return OPEN
        try:
            principal = await self.authenticate_async(header)
        except Unauthenticated:
            if self.limiter is not None:  # failed attempts count against the address
                self.limiter.enforce(f"client:{client}")
            raise
        if self.limiter is not None:
            self.limiter.enforce(principal.rate_key)
        authorize(principal, permission, self.project)
        return principal


_SHARED: weakref.WeakKeyDictionary[Any, Access] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def authenticate(source: Any, authorization_header: str | None) -> Principal:
    """The principal an ``Authorization`` header proves against a workspace (or an
    :class:`Access`, or a server state holding one as ``.access`` and its workspace as
    ``.ws``); raise :class:`Unauthenticated`. With authentication off it is :data:`OPEN`.

    Example:
        >>> # principal = authenticate(ws, "Bearer plt_...")
        >>> # authorize(principal, "models:promote", ws.settings.project)
    """
    access = source if isinstance(source, Access) else getattr(source, "access", None)
    if not isinstance(access, Access):  # a workspace, or a server state with auth off
        access = Access.of(getattr(source, "ws", source))
    return access.authenticate(authorization_header)


def local_principal(ws: Workspace) -> Principal:
    """The workspace's own user as a principal (for in-process callers such as the CLI), with
    its bindings and the embedded rule applied.

    Example:
        >>> # local_principal(ws).can("tokens:admin", ws.settings.project)
    """
    user = ws.settings.user
    with ws.catalog.session() as session:
        found = roles.bindings_of(session, [user])[user]
    if ws.settings.project not in found:
        implicit = roles.implicit_role(ws.settings, user, ws.settings.project)
        if implicit is not None:
            found[ws.settings.project] = implicit
    return Principal(user, "local", found)
