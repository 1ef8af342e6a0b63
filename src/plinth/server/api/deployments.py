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
    ws = workspace(request)
    info = ws.deployments.get(name)
    return {"deployment": name, "model": info.model, **json_ready(_stats(ws, info.model))}


def _stats(ws: Any, model: str) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from plinth.errors import ConfigError
    from plinth.monitoring.service import read_log

    empty = {"requests": 0, "rows": 0, "latency_ms": {"p50": None, "p95": None, "p99": None},
             "throughput_rps": None, "error_rate": None, "first": None, "last": None}  # fmt: skip
    try:
        log = read_log(ws, model)
    except ConfigError:
        return empty
    if "route" in log.column_names:
        route = pc.cast(log["route"], pa.string())
        log = log.filter(pc.fill_null(pc.not_equal(route, "shadow"), True))
    if log.num_rows == 0:
        return empty
    rows = log.num_rows
    errors = log["prediction"].null_count if "prediction" in log.column_names else 0
    first_rows = log.filter(pc.equal(log["row"], 0)) if "row" in log.column_names else log
    latency = first_rows["latency_ms"]
    quantiles = pc.quantile(latency, q=[0.5, 0.95, 0.99]).to_pylist()
    times = first_rows["answered_at"]
    first, last = pc.min(times).as_py(), pc.max(times).as_py()
    requests = first_rows.num_rows
    span = (last - first).total_seconds() if first and last else 0.0
    return {
        "requests": requests,
        "rows": rows,
        "latency_ms": dict(zip(("p50", "p95", "p99"), quantiles, strict=True)),
        "throughput_rps": requests / span if span > 0 else None,
        "error_rate": errors / rows,
        "first": first,
        "last": last,
    }
