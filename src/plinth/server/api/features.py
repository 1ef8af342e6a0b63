"""Feature store definitions: every applied entity, view and service; the applied views and
one view with its definition and watermark."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from plinth.server.api._common import NAME, json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

router = APIRouter(
    prefix="/features", tags=["features"], dependencies=[Depends(require("features:read"))]
)


@router.get("/views", response_model=Page, summary="Applied feature views, by name")
def list_views(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """The newest version of every applied feature view.

    Example:
        >>> # GET /api/v1/features/views
    """
    items = [json_ready(v.to_dict()) for v in workspace(request).features.view_infos()]
    return paginate(lambda n: items[:n], limit=limit, cursor=cursor)


@router.get(
    "/definitions", response_model=Page, summary="Applied entities, feature views and services"
)
def list_definitions(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """The newest version of every applied definition, as ``plinth features list`` lists them:
    entities, then feature views, then feature services, each by name; every item is the
    definition with its ``kind`` and ``version``.

    Example:
        >>> # GET /api/v1/features/definitions
    """
    found = workspace(request).features.definitions()
    items = [json_ready({"kind": k, "version": v, **d.spec()}) for k, d, v in found]
    return paginate(lambda n: items[:n], limit=limit, cursor=cursor)


@router.get("/views/{name}", summary="One feature view: definition, version and watermark")
def get_view(request: Request, name: Annotated[str, Path(pattern=NAME)]) -> dict[str, Any]:
    """One applied feature view with its version and materialization watermark.

    Example:
        >>> # GET /api/v1/features/views/weather
    """
    return json_ready(workspace(request).features.view_info(name).to_dict())
