"""Cost: what runs, models, pipelines and deployments cost, the waste of what they requested,
the server's price table, and the budgets (evaluating them fires or resolves their alerts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from plinth.governance.access import Principal
from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require

router = APIRouter(tags=["cost"])
READ = [Depends(require("runs:read"))]
Since = Annotated[
    str | None, Query(max_length=64, description="e.g. 30d (before until) or 2026-01-01")
]
Until = Annotated[
    str | None,
    Query(max_length=64, description="end of the window (ISO 8601); now if left out"),
]


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


def _window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """The window ``since`` .. ``until`` names; a duration counts back from its end."""
    from plinth.cost.accounting import parse_since
    from plinth.errors import ConfigError

    end = _until(until)
    try:
        return parse_since(since, end), end
    except OverflowError:
        raise ConfigError(
            f"--since {since} before {until} is out of the range of dates.",
            hint="Give a later until or a shorter duration.",
        ) from None


@router.get("/cost", dependencies=READ, summary="Cost report")
def cost(
    request: Request,
    by: Literal["model", "run", "pipeline", "deployment"] = "model",
    since: Since = None,
    until: Until = None,
) -> dict[str, Any]:
    """Costs grouped ``by`` model, run, pipeline or deployment, from ``since`` to ``until``,
    priced with the server's price table (``price_overrides`` names its overrides).

    Example:
        >>> # GET /api/v1/cost?by=run&since=30d
    """
    from plinth.cost.accounting import cost_report

    start, end = _window(since, until)
    return json_ready(cost_report(workspace(request), by, start, now=end).to_dict())


@router.get("/cost/waste", dependencies=READ, summary="Waste of requested resources")
def waste(request: Request, since: Since = None, until: Until = None) -> dict[str, Any]:
    """Utilization of what runs and deployments requested in the window, priced with the
    server's price table, most money wasted first.

    Example:
        >>> # GET /api/v1/cost/waste?since=30d
    """
    from plinth.cost.waste import waste_report

    start, end = _window(since, until)
    return json_ready(waste_report(workspace(request), start, now=end).to_dict())


@router.get("/cost/prices", dependencies=READ, summary="The server's price table")
def prices(request: Request) -> dict[str, Any]:
    """The prices the server costs with: the defaults with its overrides, each's source.

    Example:
        >>> # GET /api/v1/cost/prices -> {"as_of": "...", "prices": {"cpu_core_hour": ...}}
    """
    from plinth.cost.prices import prices_for

    table = prices_for(workspace(request).settings)
    return {"as_of": table.as_of, "prices": table.to_dict()}


@router.post("/cost/budgets", summary="Evaluate the budgets")
def budgets(
    request: Request, principal: Annotated[Principal, Depends(require("monitoring:write"))]
) -> list[dict[str, Any]]:
    """Month-to-date spend against each project's budget; fires or resolves the 80% and
    100% alerts of the server's project, audited as the caller.

    Example:
        >>> # POST /api/v1/cost/budgets
    """
    from plinth.cost.budgets import evaluate_budgets

    statuses = evaluate_budgets(workspace(request), actor=principal.subject)
    return [json_ready(s.to_dict()) for s in statuses]
