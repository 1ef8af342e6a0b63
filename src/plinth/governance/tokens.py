"""API tokens: random secrets shown once, stored only as a hash, expiring and revocable.

A token reads ``plt_`` followed by 43 URL-safe characters (32 random bytes from
:mod:`secrets`). The catalog keeps its SHA-256 hash (a token has 256 bits of entropy, so an
unsalted fast hash cannot be reversed or guessed), its first eight characters after ``plt_``
to tell tokens apart in listings, its owner, its expiry and when it was revoked and last used.
The secret itself is returned once, by :func:`create_token`, and never stored or logged.

``last_used_at`` is written at most once a minute per token (when a lookup finds it older
than that), never once per request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from plinth.workspace import Workspace

__all__ = [
    "DEFAULT_EXPIRY",
    "TOKEN_PREFIX",
    "NewToken",
    "TokenInfo",
    "create_token",
    "get_token",
    "hash_token",
    "list_tokens",
    "lookup",
    "parse_expiry",
    "revoke_token",
]

TOKEN_PREFIX = "plt_"
#: How long a token lives unless told otherwise.
DEFAULT_EXPIRY = "90d"
#: ``last_used_at`` is written at most this often per token.
LAST_USED_EVERY = timedelta(minutes=1)
_SHOWN = 8
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdwy])\s*$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")


def hash_token(secret: str) -> str:
    """The SHA-256 hex digest a token is stored and looked up under.

    Example:
        >>> len(hash_token("plt_abc"))
        64
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def parse_expiry(
    value: str | timedelta | datetime | None, *, now: datetime | None = None
) -> datetime | None:
    """When a token expires: ``30d``, ``12h``, ``90m``, ``2w``, ``1y``, a timedelta, an aware
    datetime, or ``never``/``None`` for no expiry.

    Example:
        >>> from datetime import UTC, datetime
        >>> parse_expiry("30d", now=datetime(2026, 1, 1, tzinfo=UTC)).isoformat()
        '2026-01-31T00:00:00+00:00'
        >>> parse_expiry("never") is None
        True
    """
    from plinth._core.clock import as_utc, utcnow

    now = now or utcnow()
    if value is None or (isinstance(value, str) and value.strip().lower() == "never"):
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, timedelta):
        delta = value
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ConfigError(
                f"'{value}' is not a token lifetime.",
                hint="Use a number and a unit: 90m, 12h, 30d, 2w, 1y, or 'never'.",
            )
        delta = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if delta <= timedelta(0):
        raise ConfigError(
            f"The token lifetime {value} is not positive.", hint="Use e.g. 30d, or 'never'."
        )
    return now + delta


@dataclass(frozen=True)
class TokenInfo:
    """What the catalog knows of a token (never the secret)."""

    id: str
    name: str
    owner: str
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``expired`` or ``revoked``.

        Example:
            >>> # get_token(ws, "tok_...").status()
        """
        from plinth._core.clock import utcnow

        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    @property
    def display(self) -> str:
        """How listings show the token: its first characters, never the whole secret."""
        return f"{TOKEN_PREFIX}{self.prefix}..."

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out: dict[str, Any] = dict(self.__dict__)
        for key in ("created_at", "expires_at", "revoked_at", "last_used_at"):
            out[key] = out[key].isoformat() if out[key] else None
        out["status"] = self.status()
        return out


@dataclass(frozen=True)
class NewToken:
    """A token just created: its record and the secret, which is shown this once.

    The secret is left out of ``repr()`` so that it does not end up in logs by accident.
    """

    info: TokenInfo
    secret: str = field(repr=False)


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        row.id,
        row.name,
        row.owner,
        row.prefix,
        row.created_at,
        row.created_by,
        row.expires_at,
        row.revoked_at,
        row.last_used_at,
    )


def create_token(
    ws: Workspace,
    name: str,
    *,
    owner: str | None = None,
    expires: str | timedelta | datetime | None = DEFAULT_EXPIRY,
    role: str | None = None,
    project: str | None = None,
    actor: str | None = None,
) -> NewToken:
    """Create a token acting for ``owner`` (the workspace user by default); return it with its
    secret, which cannot be shown again. Audited as ``token.create`` (without the secret).

    With ``role``, the token gets a role of its own in ``project`` (binding ``token:<id>``),
    which wins over its owner's role there: a read-only token for an admin, say.

    Example:
        >>> # new = create_token(ws, "ci", expires="30d", role="viewer")
        >>> # new.secret.startswith("plt_")
        >>> # True
    """
    from plinth._core.clock import utcnow
    from plinth._core.ids import new_id
    from plinth.catalog import audit
    from plinth.catalog.models import ApiToken
    from plinth.governance import roles

    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a valid token name.",
            hint="Use 1 to 128 printable characters, e.g. 'ci-deploy'.",
        )
    owner = roles.check_subject(owner or ws.settings.user)
    if role is not None:
        roles.check_role(role)
    project = project or ws.settings.project
    actor = actor or ws.settings.user
    now = utcnow()
    expires_at = parse_expiry(expires, now=now)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=new_id("tok_"),
        name=name,
        owner=owner,
        prefix=secret[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + _SHOWN],
        token_hash=hash_token(secret),
        created_at=now,
        created_by=actor,
        expires_at=expires_at,
    )
    with ws.catalog.session() as session:
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="token.create",
            resource=f"token:{row.id}",
            details={
                "name": name,
                "owner": owner,
                "prefix": row.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        if role is not None:
            roles.bind(session, subject=f"token:{row.id}", role=role, project=project, actor=actor)
        return NewToken(_info(row), secret)


def get_token(ws: Workspace, token_id: str) -> TokenInfo:
    """One token's record by id; raise :class:`NotFoundError` when there is none.

    Example:
        >>> # get_token(ws, "tok_01J...").status()
    """
    from plinth.catalog.models import ApiToken

    with ws.catalog.session() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise _no_token(token_id)
        return _info(row)


def _no_token(token_id: str) -> NotFoundError:
    return NotFoundError(
        f"No token has the id '{token_id}'.", hint="See the ids with 'plinth token list'."
    )


def list_tokens(
    ws: Workspace, *, owner: str | None = None, include_revoked: bool = True
) -> list[TokenInfo]:
    """Every token's record (never a secret), newest first.

    Example:
        >>> # [(t.id, t.status()) for t in list_tokens(ws)]
    """
    from sqlalchemy import select

    from plinth.catalog.models import ApiToken

    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if owner is not None:
        query = query.where(ApiToken.owner == owner)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    with ws.catalog.session() as session:
        return [_info(row) for row in session.scalars(query)]


def revoke_token(ws: Workspace, token_id: str, *, actor: str | None = None) -> TokenInfo:
    """Revoke a token at once (servers stop accepting it within their cache time, seconds);
    its own role bindings go with it. Audited as ``token.revoke``; revoking twice is a no-op.

    Example:
        >>> # revoke_token(ws, "tok_01J...").status()
        >>> # 'revoked'
    """
    from sqlalchemy import select

    from plinth._core.clock import utcnow
    from plinth.catalog import audit
    from plinth.catalog.models import ApiToken, RoleBinding

    actor = actor or ws.settings.user
    with ws.catalog.session() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise _no_token(token_id)
        if row.revoked_at is not None:
            return _info(row)
        row.revoked_at = utcnow()
        bindings = session.scalars(
            select(RoleBinding).where(RoleBinding.subject == f"token:{token_id}")
        ).all()
        removed = [(b.project, b.role) for b in bindings]
        for binding in bindings:
            session.delete(binding)
        audit.record(
            session,
            actor=actor,
            action="token.revoke",
            resource=f"token:{token_id}",
            details={
                "name": row.name,
                "owner": row.owner,
                "roles_removed": {project: role for project, role in removed},
            },
        )
        return _info(row)


def lookup(session: Session, secret: str, now: datetime) -> TokenInfo | None:
    """The record of the token whose secret is ``secret``, or ``None``; refreshes its
    ``last_used_at`` when that is over a minute old. Used by authentication.

    Example:
        >>> # with ws.catalog.session() as s: lookup(s, "plt_...", utcnow())
    """
    from sqlalchemy import select

    from plinth.catalog.models import ApiToken

    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 256:
        return None
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(secret))).first()
    if row is None:
        return None
    usable = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
    if usable and (row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY):
        row.last_used_at = now
    return _info(row)
