"""Cost: what runs, models, pipelines and deployments cost."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require

router = APIRouter(tags=["cost"], dependencies=[Depends(require("runs:read"))])


def _until(text: str | None) -> datetime | None:
    """The end of the window an ``until`` names (an ISO 8601 time, UTC when naive)."""
    from plinth._core.clock import as_utc
    from plinth.errors import ConfigError

    if text is None or not text.strip():
        return None
    try:
        return as_utc(datetime.fromisoformat(text.strip()))
    except (ValueError, OverflowError):
        raise ConfigError(
            f"'{text}' is not an until time.",
            hint="Give an ISO 8601 time such as 2026-11-01T00:00:00+00:00, or leave it out "
            "for now.",
        ) from None


@router.get("/cost", summary="Cost report")
def cost(
    request: Request,
    by: Literal["model", "run", "pipeline", "deployment"] = "model",
    since: Annotated[
        str | None, Query(max_length=64, description="e.g. 30d (before until) or 2026-01-01")
    ] = None,
    until: Annotated[
        str | None,
        Query(max_length=64, description="end of the window (ISO 8601); now if left out"),
    ] = None,
) -> dict[str, Any]:
    """Costs grouped ``by`` model, run, pipeline or deployment, from ``since`` to ``until``,
    priced with the server's price table (``price_overrides`` names its overrides).

    Example:
        >>> # GET /api/v1/cost?by=run&since=30d
    """
    from plinth.cost.accounting import cost_report, parse_since
    from plinth.errors import ConfigError

    end = _until(until)
    try:
        start = parse_since(since, end)  # a duration counts back from the window's end
    except OverflowError:
        raise ConfigError(
            f"--since {since} before {until} is out of the range of dates.",
            hint="Give a later until or a shorter duration.",
        ) from None
    return json_ready(cost_report(workspace(request), by, start, now=end).to_dict())
