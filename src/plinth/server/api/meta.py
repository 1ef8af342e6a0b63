"""Health and identity: ``GET /health`` (open) and ``GET /whoami``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

import plinth
from plinth.governance import roles
from plinth.governance.access import Principal
from plinth.server.auth import ANY_PRINCIPAL, require

router = APIRouter(tags=["meta"])


class Health(BaseModel):
    """The server is up."""

    status: str
    version: str


class WhoAmI(BaseModel):
    """The caller: who it is, its roles per project, and its permissions in this project."""

    subject: str
    kind: str
    roles: dict[str, str]
    project: str
    permissions: list[str]


@router.get("/health", response_model=Health, summary="Liveness (no credentials needed)")
def health() -> Health:
    """Answer that the server is up.

    Example:
        >>> health().status
        'ok'
    """
    return Health(status="ok", version=plinth.__version__)


@router.get("/whoami", response_model=WhoAmI, summary="The caller and its permissions")
def whoami(
    request: Request, principal: Annotated[Principal, Depends(require(ANY_PRINCIPAL))]
) -> WhoAmI:
    """The authenticated caller, its roles, and what it may do in the server's project.

    Example:
        >>> # GET /api/v1/whoami -> {"subject": "ana", "roles": {"default": "viewer"}, ...}
    """
    project = request.app.state.access.project
    every = sorted(frozenset().union(*roles.PERMISSIONS.values()))
    granted = [p for p in every if principal.can(p, project)]
    return WhoAmI(
        subject=principal.subject,
        kind=principal.kind,
        roles=dict(principal.roles),
        project=project,
        permissions=granted,
    )
