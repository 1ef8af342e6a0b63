"""Pipeline runs: the newest runs and one run with its steps."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

router = APIRouter(
    prefix="/pipelines", tags=["pipelines"], dependencies=[Depends(require("runs:read"))]
)


@router.get("/runs", response_model=Page, summary="Pipeline runs, newest first")
def list_pipeline_runs(
    request: Request,
    pipeline: Annotated[str | None, Query(max_length=256)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Pipeline runs, newest first, optionally of one pipeline.

    Example:
        >>> # GET /api/v1/pipelines/runs?pipeline=train_delay
    """
    pipelines = workspace(request).pipelines
    return paginate(
        lambda n: pipelines.runs(limit=n, pipeline=pipeline),
        limit=limit,
        cursor=cursor,
        convert=lambda r: json_ready(r.to_dict()),
    )


@router.get("/runs/{run_id}", summary="One pipeline run with its steps")
def get_pipeline_run(
    request: Request, run_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
) -> dict[str, Any]:
    """A pipeline run with each step's status, timing, cache use and outputs.

    Example:
        >>> # GET /api/v1/pipelines/runs/prun_01J...
    """
    return json_ready(workspace(request).pipelines.get(run_id).to_dict())
