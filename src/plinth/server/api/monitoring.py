"""Monitoring: drift of a model's prediction log by window, and alerts with their events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

router = APIRouter(tags=["monitoring"], dependencies=[Depends(require("monitoring:read"))])


@router.get("/monitoring/{model}/drift", response_model=Page, summary="Drift by window")
def drift(
    request: Request,
    model: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,160}$")],
    window: Annotated[str, Query(max_length=32, description="e.g. 1d, 6h, 10000rows")] = "1d",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Drift of each window of the model's prediction log against its reference, oldest
    window first (``model`` is a URI: ``delay``, ``delay@champion``, ``delay:3``).

    Example:
        >>> # GET /api/v1/monitoring/delay@champion/drift?window=1d
    """
    from plinth.monitoring.service import log_drift

    windows = log_drift(workspace(request), model, window=window)
    return paginate(
        lambda n: windows[:n], limit=limit, cursor=cursor, convert=lambda w: json_ready(w.to_dict())
    )


@router.get("/alerts", response_model=Page, summary="Alerts, newest first")
def list_alerts(
    request: Request,
    state: Literal["firing", "resolved", "pending"] | None = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Alerts, newest first, optionally in one state or for one model.

    Example:
        >>> # GET /api/v1/alerts?state=firing
    """
    from plinth.monitoring.alerts import AlertManager

    manager = AlertManager(workspace(request))
    return paginate(
        lambda n: manager.alerts(state=state, model=model, limit=n),
        limit=limit,
        cursor=cursor,
        convert=lambda a: json_ready(a.to_dict()),
    )


@router.get("/alerts/{alert_id}", summary="One alert with its events")
def get_alert(request: Request, alert_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    """An alert and its history: fired, actions taken, resolved.

    Example:
        >>> # GET /api/v1/alerts/7
    """
    from plinth.monitoring.alerts import AlertManager

    manager = AlertManager(workspace(request))
    found = manager.get(alert_id)
    events = [e.to_dict() for e in manager.history(alert_id)]
    return json_ready({**found.to_dict(), "events": events})
