"""The audit trail: events, newest first, and a verification of the hash chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[Depends(require("tokens:read"))])


@router.get("", response_model=Page, summary="Audit events, newest first")
def list_events(
    request: Request,
    resource: Annotated[str | None, Query(max_length=512)] = None,
    action: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Audit events, newest first, for one resource (a prefix matches every version) or
    action.

    Example:
        >>> # GET /api/v1/audit?resource=model:delay&action=model.alias
    """
    from plinth.catalog.audit import events

    ws = workspace(request)
    return paginate(
        lambda n: events(ws, resource=resource, action=action, limit=n),
        limit=limit,
        cursor=cursor,
        convert=lambda e: json_ready(e.to_dict()),
    )


@router.get("/verify", summary="Verify the audit hash chain")
def verify_chain(request: Request) -> dict[str, Any]:
    """Check every audit event's hash against its content and its predecessor.

    Example:
        >>> # GET /api/v1/audit/verify -> {"ok": true, ...}
    """
    from plinth.catalog.audit import verify

    return json_ready(verify(workspace(request)).to_dict())
