"""Pipeline runs: the newest runs, one run with its steps, and a step's captured log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from plinth.errors import PlinthError
from plinth.server.api._common import json_ready, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, paginate

#: The largest step log one answer carries, in bytes (larger answers 413): a step keeps at
#: most ``LOG_LIMIT`` (8 MiB) of output per attempt, so this is eight attempts' worth.
MAX_LOG_BYTES = 64 * 1024**2
RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class LogTooLarge(PlinthError):
    """A step's log is larger than one answer carries."""

    status_code = 413


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
def get_pipeline_run(request: Request, run_id: RunId) -> dict[str, Any]:
    """A pipeline run with each step's status, timing, cache use and outputs.

    Example:
        >>> # GET /api/v1/pipelines/runs/prun_01J...
    """
    return json_ready(workspace(request).pipelines.get(run_id).to_dict())


@router.get("/runs/{run_id}/steps/{step}/log", summary="A step's captured stdout and stderr")
def get_step_log(
    request: Request,
    run_id: RunId,
    step: Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")],
) -> dict[str, Any]:
    """What ``plinth pipeline logs RUN STEP`` prints: the step's captured stdout and stderr,
    every attempt with its traceback, as text (``""`` when it printed nothing). A log over
    ``MAX_LOG_BYTES`` answers 413.

    Example:
        >>> # GET /api/v1/pipelines/runs/prun_01J.../steps/train/log
    """
    ws = workspace(request)
    detail = ws.pipelines.get(run_id)
    info = detail.step(step)  # 404 for a step the run does not have
    data = ws.artifacts.get_bytes(info.log_digest) if info.log_digest else b""
    if len(data) > MAX_LOG_BYTES:
        raise LogTooLarge(
            f"The log of step '{step}' of {detail.id} is {len(data):,} bytes, over the "
            f"{MAX_LOG_BYTES:,} one answer may carry.",
            hint="Read it on a machine with the catalog: 'plinth pipeline logs' without "
            "PLINTH_URL.",
        )
    return {"run_id": detail.id, "step": step, "log": data.decode("utf-8", "replace")}
