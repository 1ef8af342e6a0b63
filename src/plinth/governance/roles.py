"""Roles per project and the permissions each grants.

A *permission* is ``RESOURCE:ACTION``: ``models:promote``, ``predictions:read`` ... The four
roles are cumulative, each granting everything the one before it does:

============  ==========================================================================
role          grants
============  ==========================================================================
viewer        ``read`` on tables, features, runs, models, deployments, monitoring and
              predictions (which includes calling the inference API)
developer     viewer, plus ``write`` on tables, features, runs, models, monitoring and
              predictions (ingest, define features, track runs, register versions,
              write alert rules, log labels)
deployer      developer, plus ``models:promote`` (move an alias), ``deployments:write``
              and ``deployments:deploy``
admin         everything, including every ``tokens:*`` permission (create, list and
              revoke tokens; grant and revoke roles) and ``admin`` on every resource
============  ==========================================================================

A binding gives one subject one role in one project. Subjects are user names (a token acts
for its owner), ``token:<id>`` (a role for one token, which wins over its owner's role, so a
read-only token can be cut from an admin's account) and ``oidc:<sub>`` (an OIDC identity).

The embedded rule: with the embedded SQLite catalog, the workspace's own user
(``PLINTH_USER``) is an implicit admin of the workspace's project (``PLINTH_PROJECT``) as long
as no binding names that user there. Whoever can open the SQLite file can change anything in
it anyway; a binding for the user replaces the implicit role. With a PostgreSQL catalog nobody
is implicit: grant roles explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from plinth._core.settings import Settings
    from plinth.workspace import Workspace

__all__ = [
    "ACTIONS",
    "PERMISSIONS",
    "RESOURCES",
    "ROLES",
    "RoleBindingInfo",
    "RoleListing",
    "bind",
    "bindings_of",
    "check_permission",
    "check_role",
    "check_subject",
    "grant",
    "implicit_role",
    "is_embedded",
    "list_bindings",
    "permissions_of",
    "revoke",
    "role_listing",
]

ROLES = ("viewer", "developer", "deployer", "admin")
RESOURCES = (
    "tables",
    "features",
    "runs",
    "models",
    "deployments",
    "monitoring",
    "predictions",
    "tokens",
)
ACTIONS = ("read", "write", "promote", "deploy", "admin")

_DATA = ("tables", "features", "runs", "models", "deployments", "monitoring", "predictions")
_VIEWER = frozenset(f"{r}:read" for r in _DATA)
_DEVELOPER = _VIEWER | {
    f"{r}:write" for r in ("tables", "features", "runs", "models", "monitoring", "predictions")
}
_DEPLOYER = _DEVELOPER | {"models:promote", "deployments:write", "deployments:deploy"}
_ADMIN = _DEPLOYER | {f"{r}:admin" for r in RESOURCES} | {"tokens:read", "tokens:write"}

#: The permissions each role grants.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": _VIEWER,
    "developer": frozenset(_DEVELOPER),
    "deployer": frozenset(_DEPLOYER),
    "admin": frozenset(_ADMIN),
}
_ALL = frozenset().union(*PERMISSIONS.values())
_SUBJECT = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_role(role: str) -> str:
    """Return ``role`` if it is one of the four roles, else raise :class:`ConfigError`.

    Example:
        >>> check_role("deployer")
        'deployer'
    """
    if role not in PERMISSIONS:
        raise ConfigError(
            f"'{role}' is not a role.", hint=f"Use one of: {', '.join(ROLES)} (docs/security.md)."
        )
    return role


def check_permission(permission: str) -> str:
    """Return ``permission`` if some role grants it, else raise :class:`ValueError` (a typo in
    code must fail loudly rather than deny or allow by accident).

    Example:
        >>> check_permission("models:promote")
        'models:promote'
    """
    if permission not in _ALL:
        raise ValueError(f"Unknown permission {permission!r}; known: {', '.join(sorted(_ALL))}.")
    return permission


def permissions_of(role: str) -> frozenset[str]:
    """The permissions a role grants.

    Example:
        >>> "models:promote" in permissions_of("viewer")
        False
        >>> "models:promote" in permissions_of("deployer")
        True
    """
    return PERMISSIONS[check_role(role)]


def is_embedded(catalog_url: str) -> bool:
    """Whether a catalog URL is the embedded kind (SQLite).

    Example:
        >>> is_embedded("sqlite:////tmp/ws/catalog.db"), is_embedded("postgresql://h/db")
        (True, False)
    """
    return catalog_url.split(":", 1)[0].split("+", 1)[0].lower() == "sqlite"


def implicit_role(settings: Settings, subject: str, project: str) -> str | None:
    """The role a subject holds without a binding: ``admin`` for the workspace's own user in
    its own project with the embedded catalog, else none.

    Example:
        >>> from plinth._core.settings import Settings
        >>> implicit_role(Settings(home="/tmp/ws", user="ana"), "ana", "default")
        'admin'
        >>> implicit_role(Settings(home="/tmp/ws", user="ana"), "bob", "default") is None
        True
    """
    if subject == settings.user and project == settings.project:
        return "admin" if is_embedded(settings.catalog_url) else None
    return None


@dataclass(frozen=True)
class RoleBindingInfo:
    """One role binding as read back."""

    project: str
    subject: str
    role: str
    granted_at: datetime
    granted_by: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {**self.__dict__, "granted_at": self.granted_at.isoformat()}


def _info(row: Any) -> RoleBindingInfo:
    return RoleBindingInfo(row.project, row.subject, row.role, row.granted_at, row.granted_by)


def check_subject(subject: str) -> str:
    """Return ``subject`` if it can be named in a binding (1 to 256 characters, no spaces),
    else raise :class:`ConfigError`.

    Example:
        >>> check_subject("oidc:0f3c")
        'oidc:0f3c'
    """
    if not isinstance(subject, str) or not _SUBJECT.match(subject):
        raise ConfigError(
            f"{subject!r} is not a valid subject.",
            hint="Name a user (ana), a token (token:tok_...) or an OIDC identity (oidc:SUB): "
            "1 to 256 characters without spaces.",
        )
    return subject


def _check_project(project: str) -> str:
    if not isinstance(project, str) or not _PROJECT.match(project):
        raise ConfigError(
            f"{project!r} is not a valid project name.",
            hint="Use letters, digits, '_', '.' and '-', starting with a letter or digit.",
        )
    return project


def _check_token_subject(session: Session, subject: str) -> None:
    from plinth.catalog.models import ApiToken

    if subject.startswith("token:") and session.get(ApiToken, subject[len("token:") :]) is None:
        raise NotFoundError(
            f"No token has the id '{subject[len('token:') :]}'.",
            hint="See the ids with 'plinth token list'.",
        )


def grant(
    ws: Workspace, subject: str, role: str, *, project: str | None = None, actor: str | None = None
) -> RoleBindingInfo:
    """Give ``subject`` ``role`` in ``project`` (the workspace's project by default), replacing
    any role it held there; audited as ``role.grant``.

    Example:
        >>> # grant(ws, "ana", "deployer")
        >>> # grant(ws, "oidc:0f3c...", "viewer", project="fraud")
    """
    with ws.catalog.session() as session:
        return bind(
            session,
            subject=subject,
            role=role,
            project=project or ws.settings.project,
            actor=actor or ws.settings.user,
        )


def bind(session: Session, *, subject: str, role: str, project: str, actor: str) -> RoleBindingInfo:
    """:func:`grant` inside the caller's catalog transaction (audited there too).

    Example:
        >>> # with ws.catalog.session() as s:
        >>> #     bind(s, subject="token:tok_1", role="viewer", project="default", actor="ana")
    """
    from sqlalchemy import select

    from plinth._core.clock import utcnow
    from plinth.catalog import audit
    from plinth.catalog.models import RoleBinding

    check_role(role)
    check_subject(subject)
    _check_project(project)
    _check_token_subject(session, subject)
    row = session.scalars(
        select(RoleBinding).where(RoleBinding.project == project, RoleBinding.subject == subject)
    ).first()
    previous = row.role if row is not None else None
    if row is None:
        row = RoleBinding(project=project, subject=subject, role=role)
        session.add(row)
    row.role = role
    row.granted_at = utcnow()
    row.granted_by = actor
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="role.grant",
        resource=f"role:{project}/{subject}",
        details={"role": role, "previous": previous},
    )
    return _info(row)


def revoke(
    ws: Workspace, subject: str, *, project: str | None = None, actor: str | None = None
) -> RoleBindingInfo:
    """Remove ``subject``'s role in ``project``; audited as ``role.revoke``.

    Raises :class:`NotFoundError` when the subject holds no role there.

    Example:
        >>> # revoke(ws, "ana")
    """
    from sqlalchemy import select

    from plinth.catalog import audit
    from plinth.catalog.models import RoleBinding

    project = project or ws.settings.project
    actor = actor or ws.settings.user
    with ws.catalog.session() as session:
        row = session.scalars(
            select(RoleBinding).where(
                RoleBinding.project == project, RoleBinding.subject == subject
            )
        ).first()
        if row is None:
            raise NotFoundError(
                f"'{subject}' holds no role in project '{project}'.",
                hint="See the bindings with 'plinth role list'.",
            )
        info = _info(row)
        session.delete(row)
        audit.record(
            session,
            actor=actor,
            action="role.revoke",
            resource=f"role:{project}/{subject}",
            details={"role": info.role},
        )
        return info


def list_bindings(ws: Workspace, *, project: str | None = None) -> list[RoleBindingInfo]:
    """Every role binding, or those of one project, ordered by project and subject.

    Example:
        >>> # [(b.subject, b.role) for b in list_bindings(ws)]
    """
    from sqlalchemy import select

    from plinth.catalog.models import RoleBinding

    query = select(RoleBinding).order_by(RoleBinding.project, RoleBinding.subject)
    if project:
        query = query.where(RoleBinding.project == project)
    with ws.catalog.session() as session:
        return [_info(row) for row in session.scalars(query)]


@dataclass(frozen=True)
class RoleListing:
    """What ``plinth role list`` shows: the bindings and, under the embedded rule, the
    workspace's own user as the implicit role holder of its project (``None`` otherwise)."""

    bindings: list[RoleBindingInfo]
    implicit: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: ``bindings`` and ``implicit``."""
        return {"bindings": [b.to_dict() for b in self.bindings], "implicit": self.implicit}


def role_listing(ws: Workspace, *, project: str | None = None) -> RoleListing:
    """Every role binding (or one project's) and the implicit admin of an embedded workspace,
    when no binding names the workspace's user in its project.

    Example:
        >>> import tempfile
        >>> from plinth.workspace import Workspace
        >>> with Workspace(tempfile.mkdtemp()) as ws:
        ...     role_listing(ws).implicit["role"]
        'admin'
    """
    bindings = list_bindings(ws, project=project)
    settings = ws.settings
    implicit = None
    if (project or settings.project) == settings.project and not any(
        b.subject == settings.user and b.project == settings.project for b in bindings
    ):
        role = implicit_role(settings, settings.user, settings.project)
        if role is not None:
            implicit = {"project": settings.project, "subject": settings.user, "role": role}
    return RoleListing(bindings, implicit)


def bindings_of(session: Session, subjects: Iterable[str]) -> dict[str, dict[str, str]]:
    """The roles of each subject, per project: ``{subject: {project: role}}``.

    Example:
        >>> # with ws.catalog.session() as s: bindings_of(s, ["ana", "token:tok_1"])
    """
    from sqlalchemy import select

    from plinth.catalog.models import RoleBinding

    wanted = list(dict.fromkeys(subjects))
    found: dict[str, dict[str, str]] = {s: {} for s in wanted}
    rows = session.execute(
        select(RoleBinding.subject, RoleBinding.project, RoleBinding.role).where(
            RoleBinding.subject.in_(wanted)
        )
    )
    for subject, project, role in rows:
        found[subject][project] = role
    return found
