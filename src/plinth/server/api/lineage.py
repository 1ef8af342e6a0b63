"""Lineage: the graph upstream and downstream of any catalog object."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from plinth.server.api._common import NAME, json_ready, workspace
from plinth.server.auth import require

router = APIRouter(tags=["lineage"], dependencies=[Depends(require("models:read"))])


@router.get("/lineage/{obj:path}", summary="The lineage graph of an object")
def get_lineage(
    request: Request,
    obj: Annotated[str, Path(pattern=NAME, description="e.g. delay@champion, table:flights@3")],
    direction: Literal["up", "down", "both"] = "up",
    depth: Annotated[int | None, Query(ge=0, le=1000)] = None,
) -> dict[str, Any]:
    """Walk the lineage of ``obj``: its inputs (``up``), what was made from it (``down``),
    or both, at most ``depth`` hops.

    Example:
        >>> # GET /api/v1/lineage/delay@champion?direction=up
    """
    from plinth.governance.lineage import lineage

    return json_ready(lineage(workspace(request), obj, direction, depth).to_dict())
