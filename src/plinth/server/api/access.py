"""Identity and access administration: API tokens and role bindings.

Listing needs ``tokens:read`` and every change ``tokens:admin`` (both an admin's). Changes
call the same services as ``plinth token`` and ``plinth role`` and are audited as the caller.
One rule applies on top of the permission, since a caller reaches other projects through
what it creates: a role (of a subject or of a new token) can be given or taken in a project
only by an admin of that project, and a token for another owner, who acts with that owner's
roles, only by an admin of every project the owner holds a role in.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from plinth.governance.access import Principal
from plinth.server.api._common import NAME, json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

router = APIRouter(tags=["access"])
READ = [Depends(require("tokens:read"))]
Admin = Annotated[Principal, Depends(require("tokens:admin"))]
TokenId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Subject = Annotated[str, Query(min_length=1, max_length=256, pattern=NAME)]
ProjectQuery = Annotated[str | None, Query(max_length=128, pattern=NAME)]


class TokenRequest(BaseModel):
    """A token to create: what it is for, who it acts for, its lifetime and its own role."""

    name: str = Field(min_length=1, max_length=128)
    owner: str | None = Field(default=None, max_length=256)
    expires: str | None = Field(default="90d", max_length=32, description="30d, 12h, never")
    role: str | None = Field(default=None, max_length=32)
    project: str | None = Field(default=None, max_length=128)


class RoleGrant(BaseModel):
    """A role to give a subject in a project (the server's project by default)."""

    subject: str = Field(min_length=1, max_length=256)
    role: str = Field(min_length=1, max_length=32)
    project: str | None = Field(default=None, max_length=128)


def _admin_of(request: Request, principal: Principal, project: str) -> None:
    """Refuse (403) a change in ``project`` unless the caller administers it."""
    request.app.state.access.authorize(principal, "tokens:admin", project)


def _forget(request: Request) -> None:
    """Make a change of tokens or roles count at once on this server, not after its cache."""
    request.app.state.access.forget()


@router.get("/tokens", response_model=Page, dependencies=READ, summary="API tokens")
def list_tokens(
    request: Request,
    include_revoked: bool = True,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Every token's record (never a secret), newest first.

    Example:
        >>> # GET /api/v1/tokens?include_revoked=false
    """
    from plinth.governance.tokens import list_tokens as tokens

    found = tokens(workspace(request), include_revoked=include_revoked)
    return paginate(lambda n: found[:n], limit=limit, cursor=cursor, convert=_to_dict)


@router.get("/tokens/{token_id}", dependencies=READ, summary="One API token")
def get_token(request: Request, token_id: TokenId) -> dict[str, Any]:
    """One token's record (never its secret).

    Example:
        >>> # GET /api/v1/tokens/tok_01J...
    """
    from plinth.governance.tokens import get_token as token

    return token(workspace(request), token_id).to_dict()


@router.post("/tokens", status_code=201, summary="Create an API token (shown once)")
def create_token(request: Request, body: TokenRequest, principal: Admin) -> dict[str, Any]:
    """Create a token acting for ``owner`` (the caller by default); the answer holds its
    secret, which is stored only as a hash and never shown again.

    Example:
        >>> # POST /api/v1/tokens {"name": "ci", "role": "viewer", "expires": "30d"}
    """
    from plinth.governance import roles, tokens

    ws = workspace(request)
    owner = roles.check_subject(body.owner or principal.subject)
    project = body.project or ws.settings.project
    if body.role is not None:
        roles.check_role(body.role)
        _admin_of(request, principal, project)
    if owner != principal.subject:
        with ws.catalog.session() as session:
            held = roles.bindings_of(session, [owner])[owner]
        for other in sorted(held):
            _admin_of(request, principal, other)
    new = tokens.create_token(
        ws,
        body.name,
        owner=owner,
        expires=body.expires or "never",
        role=body.role,
        project=project,
        actor=principal.subject,
    )
    return {**new.info.to_dict(), "token": new.secret, "role": body.role, "project": project}


@router.delete("/tokens/{token_id}", summary="Revoke an API token")
def revoke_token(request: Request, token_id: TokenId, principal: Admin) -> dict[str, Any]:
    """Revoke a token (a no-op when it already is) and remove its own roles; this server
    refuses it from the next request on.

    Example:
        >>> # DELETE /api/v1/tokens/tok_01J...
    """
    from plinth.governance.tokens import revoke_token as revoke

    info = revoke(workspace(request), token_id, actor=principal.subject)
    _forget(request)
    return info.to_dict()


@router.get("/roles", dependencies=READ, summary="Role bindings")
def list_roles(request: Request, project: ProjectQuery = None) -> dict[str, Any]:
    """Every role binding (or one project's) and the implicit admin of an embedded catalog.

    Example:
        >>> # GET /api/v1/roles?project=default
    """
    from plinth.governance.roles import role_listing

    return json_ready(role_listing(workspace(request), project=project).to_dict())


@router.post("/roles", summary="Grant a role")
def grant_role(request: Request, body: RoleGrant, principal: Admin) -> dict[str, Any]:
    """Give a subject a role in a project, replacing the role it held there.

    Example:
        >>> # POST /api/v1/roles {"subject": "ana", "role": "deployer"}
    """
    from plinth.governance import roles

    ws = workspace(request)
    project = body.project or ws.settings.project
    roles.check_role(body.role)
    _admin_of(request, principal, project)
    binding = roles.grant(ws, body.subject, body.role, project=project, actor=principal.subject)
    _forget(request)
    return binding.to_dict()


@router.delete("/roles", summary="Revoke a role")
def revoke_role(
    request: Request, subject: Subject, principal: Admin, project: ProjectQuery = None
) -> dict[str, Any]:
    """Take away a subject's role in a project (the server's project by default).

    Example:
        >>> # DELETE /api/v1/roles?subject=ana&project=default
    """
    from plinth.governance import roles

    ws = workspace(request)
    project = project or ws.settings.project
    _admin_of(request, principal, project)
    binding = roles.revoke(ws, subject, project=project, actor=principal.subject)
    _forget(request)
    return binding.to_dict()


def _to_dict(item: Any) -> Any:
    return item.to_dict()
