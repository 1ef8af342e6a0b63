"""Cost: what runs, models, pipelines and deployments cost."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require

router = APIRouter(tags=["cost"], dependencies=[Depends(require("runs:read"))])


@router.get("/cost", summary="Cost report")
def cost(
    request: Request,
    by: Literal["model", "run", "pipeline", "deployment"] = "model",
    since: Annotated[str | None, Query(max_length=64, description="e.g. 30d or 2026-01-01")] = None,
) -> dict[str, Any]:
    """Costs grouped ``by`` model, run, pipeline or deployment, since a time.

    Example:
        >>> # GET /api/v1/cost?by=run&since=30d
    """
    from plinth.cost.accounting import cost_report, parse_since

    return json_ready(cost_report(workspace(request), by, parse_since(since)).to_dict())
