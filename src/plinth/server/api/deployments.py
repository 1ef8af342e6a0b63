"""Deployments: what is deployed where, and serving figures from the prediction log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

router = APIRouter(
    prefix="/deployments",
    tags=["deployments"],
    dependencies=[Depends(require("deployments:read"))],
)
DeploymentName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


@router.get("", response_model=Page, summary="Deployments")
def list_deployments(request: Request, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """Every deployment with its routes, target and revision.

    Example:
        >>> # GET /api/v1/deployments
    """
    found = workspace(request).deployments.list()
    return paginate(lambda n: found[:n], limit=limit, cursor=cursor, convert=lambda d: d.to_dict())


@router.get("/{name}", summary="One deployment with its revisions")
def get_deployment(request: Request, name: DeploymentName) -> dict[str, Any]:
    """A deployment and its revision history, newest first.

    Example:
        >>> # GET /api/v1/deployments/delay
    """
    deployments = workspace(request).deployments
    info = deployments.get(name)
    history = [r.to_dict() for r in reversed(deployments.history(name))]
    return {**info.to_dict(), "revisions": history}


@router.get("/{name}/stats", summary="Latency, throughput and error rate")
def deployment_stats(request: Request, name: DeploymentName) -> dict[str, Any]:
    """Latency percentiles (ms), throughput (requests/s) and error rate of a deployment,
    from its model's prediction log (live traffic; shadow rows left out).

    Example:
        >>> # GET /api/v1/deployments/delay/stats -> {"requests": 120, "latency_ms": {...}}
    """
    from plinth.monitoring.service import deployment_stats

    return json_ready(deployment_stats(workspace(request), name))
