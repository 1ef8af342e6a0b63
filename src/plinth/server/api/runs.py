"""Tracked runs: query and inspect them, chart a metric, and track a run from afar
(create, log metrics in batches, parameters and tags, upload artifacts, record inputs, end
with the process's resource use)."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator

from plinth.errors import ConfigError, PlinthError
from plinth.server.api import _tracking
from plinth.server.api._common import binary_body, workspace
from plinth.server.auth import require
from plinth.server.pagination import Cursor, Limit, Page, decode_cursor, page_of
from plinth.tracking.checks import MAX_KEY_LENGTH, MAX_STEP, MIN_STEP

router = APIRouter(prefix="/runs", tags=["runs"])
READ = [Depends(require("runs:read"))]
WRITE = [Depends(require("runs:write"))]
RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A run id.")]
Mapping = dict[str, Any]
#: The largest artifact one upload may carry, in bytes (larger answers 413).
MAX_ARTIFACT_BYTES = 512 * 1024**2
MAX_ENVIRONMENT_BYTES = 256 * 1024
ArtifactKind = Literal["file", "bytes", "text", "json", "parquet", "pickle"]


class PayloadTooLarge(PlinthError):
    """A request body is larger than the route accepts."""

    status_code = 413


class RunCreate(BaseModel):
    """A run to start: its experiment, and optionally parameters and tags."""

    experiment: str = Field(min_length=1, max_length=128)
    params: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    launcher: Literal["api", "local", "torchrun", "ray", "tune"] = "api"
    parent: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    entry_point: str | None = Field(default=None, max_length=4096)
    arguments: list[str] | None = Field(default=None, max_length=1000)
    requested: dict[str, Any] | None = None
    environment: dict[str, Any] | None = Field(
        default=None,
        description="What the client captured about its process (code, interpreter, "
        "packages, machine, git state), stored as a local run stores its own; at most "
        f"{MAX_ENVIRONMENT_BYTES // 1024} KiB as JSON.",
    )

    @field_validator("environment")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > MAX_ENVIRONMENT_BYTES:
            raise ValueError(f"the environment is over {MAX_ENVIRONMENT_BYTES // 1024} KiB")
        return value


class RunCreated(BaseModel):
    """The id of the run just created."""

    id: str


class MetricPoint(BaseModel):
    """One metric point; ``step`` defaults to the key's previous step plus one."""

    key: str = Field(min_length=1, max_length=MAX_KEY_LENGTH)
    value: float
    step: int | None = Field(default=None, ge=MIN_STEP, le=MAX_STEP)
    timestamp: datetime | float | None = None


class MetricBatch(BaseModel):
    """Metric points to log in one request."""

    points: list[MetricPoint] = Field(max_length=100_000)


class Params(BaseModel):
    """Parameters to record (fixed once logged)."""

    params: dict[str, Any]


class Tags(BaseModel):
    """Tags to set (a tag may change)."""

    tags: dict[str, Any]


class ResourceUse(BaseModel):
    """What the run's process used (as :class:`plinth.tracking.resources.Usage` records)."""

    host: str = Field(default="unknown", max_length=255)
    wall_seconds: float = Field(default=0.0, ge=0, le=1e10)
    cpu_seconds: float = Field(default=0.0, ge=0, le=1e12)
    peak_rss_bytes: int = Field(default=0, ge=0, le=2**62)
    gpu_count: int = Field(default=0, ge=0, le=100_000)
    gpu_seconds: float = Field(default=0.0, ge=0, le=1e12)
    gpu_peak_bytes: int = Field(default=0, ge=0, le=2**62)


class RunEnd(BaseModel):
    """How the run ended, and optionally what its process used.

    ``attached`` is a script that joined a launcher's run (``plinth train``): its usage is
    recorded and its status only when it failed or was killed; the launcher ends the run.
    ``rank`` is the attached process's rank under torchrun (``plinth train --nproc``): each
    rank records its own usage, which the run's cost sums.
    """

    status: Literal["finished", "failed", "killed"] = "finished"
    error: str | None = Field(default=None, max_length=100_000)
    usage: ResourceUse | None = None
    attached: bool = False
    rank: int = Field(default=0, ge=0, le=65_535)


class Inputs(BaseModel):
    """Inputs of a run: ``table@N``, ``table`` (its current version) or
    ``training_set:<id>``."""

    inputs: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        min_length=1, max_length=1000
    )


class InputsRecorded(BaseModel):
    """The lineage ids of the inputs just recorded."""

    run_id: str
    inputs: list[str]


class ArtifactStored(BaseModel):
    """The artifact just stored."""

    run_id: str
    name: str
    kind: str
    size: int


class Logged(BaseModel):
    """How many items a write recorded."""

    run_id: str
    count: int


class MetricSeries(BaseModel):
    """One metric series of a run, downsampled on the server when it is long."""

    run_id: str
    key: str
    total: int
    downsampled: bool
    steps: list[int]
    values: list[float | None]
    timestamps: list[str]


@router.get("", response_model=Page, dependencies=READ, summary="Runs, filtered and sorted")
def list_runs(
    request: Request,
    filter: Annotated[
        str | None, Query(max_length=4000, description="e.g. metrics.auc > 0.7")
    ] = None,
    sort: Annotated[str | None, Query(max_length=1000, description="e.g. metrics.auc desc")] = None,
    experiment: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Mapping:
    """Runs matching ``filter`` (and ``experiment``), ordered by ``sort`` (newest first by
    default); the filter language is that of ``plinth runs list``.

    Example:
        >>> # GET /api/v1/runs?filter=metrics.auc%20%3E%200.7&sort=metrics.auc%20desc
    """
    if experiment is not None:
        quoted = "'" + experiment.replace("'", "''") + "'"
        filter = f"experiment = {quoted}" + (f" and {filter}" if filter else "")
    offset = decode_cursor(cursor)
    found = workspace(request).runs.list(filter, sort, limit + 1, offset)
    page = page_of(found, offset, limit)
    page["items"] = [run.to_dict() for run in page["items"]]
    return page


@router.get("/{run_id}", dependencies=READ, summary="Everything recorded about a run")
def get_run(request: Request, run_id: RunId) -> Mapping:
    """One run: parameters, metric summaries, artifacts, resources, inputs, children.

    Example:
        >>> # GET /api/v1/runs/run_01J...
    """
    return workspace(request).runs.get(run_id).to_dict()


@router.get(
    "/{run_id}/metrics/{key:path}",
    response_model=MetricSeries,
    dependencies=READ,
    summary="A metric's history, downsampled",
)
def metric_history(
    request: Request,
    run_id: RunId,
    key: Annotated[str, Path(min_length=1, max_length=MAX_KEY_LENGTH)],
    max_points: Annotated[int, Query(ge=2, le=100_000)] = 500,
) -> Mapping:
    """One metric series of a run with at most ``max_points`` points (per bucket its lowest
    and highest point, plus the first and last).

    Example:
        >>> # GET /api/v1/runs/run_01J.../metrics/loss?max_points=500
    """
    return workspace(request).runs.history(run_id, key, max_points).to_dict()


@router.post(
    "", response_model=RunCreated, status_code=201, dependencies=WRITE, summary="Start a run"
)
def create_run(request: Request, body: RunCreate) -> RunCreated:
    """Start a run; log to it with the routes below and end it with ``POST .../end``.

    Example:
        >>> # POST /api/v1/runs {"experiment": "delay", "params": {"lr": 0.1}}
    """
    run_id = _tracking.create(
        workspace(request),
        body.experiment,
        body.params,
        body.tags,
        launcher=body.launcher,
        parent=body.parent,
        entry_point=body.entry_point,
        arguments=body.arguments,
        requested=body.requested,
        environment=body.environment,
    )
    return RunCreated(id=run_id)


@router.post(
    "/{run_id}/metrics", response_model=Logged, dependencies=WRITE, summary="Log metric points"
)
def log_metrics(request: Request, run_id: RunId, body: MetricBatch) -> Logged:
    """Log a batch of metric points to a running run.

    Example:
        >>> # POST /api/v1/runs/run_01J.../metrics {"points": [{"key": "loss", "value": 0.5}]}
    """
    now_us = time.time_ns() // 1000
    points = [
        (p.key, p.value, p.step, _micros(p.timestamp) if p.timestamp is not None else now_us)
        for p in body.points
    ]
    count = _tracking.log_points(workspace(request), run_id, points)
    return Logged(run_id=run_id, count=count)


@router.post(
    "/{run_id}/params", response_model=Logged, dependencies=WRITE, summary="Log parameters"
)
def log_params(request: Request, run_id: RunId, body: Params) -> Logged:
    """Record parameters of a run; changing a logged one answers 409.

    Example:
        >>> # POST /api/v1/runs/run_01J.../params {"params": {"depth": 6}}
    """
    _tracking.log_params(workspace(request), run_id, body.params)
    return Logged(run_id=run_id, count=len(body.params))


@router.post("/{run_id}/tags", response_model=Logged, dependencies=WRITE, summary="Set tags")
def set_tags(request: Request, run_id: RunId, body: Tags) -> Logged:
    """Set tags on a run, open or ended.

    Example:
        >>> # POST /api/v1/runs/run_01J.../tags {"tags": {"team": "ops"}}
    """
    from plinth.tracking.run import tag_run

    tag_run(workspace(request), run_id, body.tags)
    return Logged(run_id=run_id, count=len(body.tags))


class ExperimentName(BaseModel):
    """The experiment a running run moves to."""

    experiment: str = Field(min_length=1, max_length=128)


@router.post(
    "/{run_id}/experiment", dependencies=WRITE, summary="Move a running run to an experiment"
)
def rename_experiment(request: Request, run_id: RunId, body: ExperimentName) -> Mapping:
    """Move a running run to ``experiment``, as a script under ``plinth train`` names its
    launcher's run (409 once the run has ended).

    Example:
        >>> # POST /api/v1/runs/run_01J.../experiment {"experiment": "delay-model"}
    """
    from plinth.tracking.run import rename_experiment as rename

    ws = workspace(request)
    _tracking._running(ws, run_id)
    return {"run_id": run_id, "experiment": rename(ws, run_id, body.experiment)}


@router.post("/{run_id}/end", dependencies=WRITE, summary="End a run")
def end_run(request: Request, run_id: RunId, body: RunEnd) -> Mapping:
    """End a running run as finished, failed or killed; answers the run.

    Example:
        >>> # POST /api/v1/runs/run_01J.../end {"status": "failed", "error": "diverged"}
    """
    ws = workspace(request)
    usage = body.usage.model_dump() if body.usage is not None else None
    _tracking.end(
        ws, run_id, body.status, body.error, usage, attached=body.attached, rank=body.rank
    )
    return ws.runs.get(run_id).to_dict()


@router.post(
    "/{run_id}/inputs",
    response_model=InputsRecorded,
    dependencies=WRITE,
    summary="Record inputs of a run",
)
def record_inputs(request: Request, run_id: RunId, body: Inputs) -> InputsRecorded:
    """Record what a running run read: table versions or training sets (lineage edges).

    Example:
        >>> # POST /api/v1/runs/run_01J.../inputs {"inputs": ["flights@3"]}
    """
    recorded = _tracking.use(workspace(request), run_id, body.inputs)
    return InputsRecorded(run_id=run_id, inputs=recorded)


@router.post(
    "/{run_id}/artifacts/{name:path}",
    response_model=ArtifactStored,
    status_code=201,
    dependencies=WRITE,
    summary="Upload an artifact of a run",
    openapi_extra=binary_body(
        f"The artifact's bytes, at most {MAX_ARTIFACT_BYTES // 1024**2} MiB (else 413)."
    ),
)
async def upload_artifact(
    request: Request,
    run_id: RunId,
    name: Annotated[str, Path(min_length=1, max_length=1024, description="Artifact name.")],
    kind: Annotated[ArtifactKind, Query(description="How the bytes were made.")] = "file",
) -> ArtifactStored:
    """Store the raw request body as an artifact of a running run, in the server's artifact
    store (content-addressed, as ``run.log_artifact`` stores it locally).

    Example:
        >>> # POST /api/v1/runs/run_01J.../artifacts/model.pkl?kind=pickle  <bytes>
    """
    data = await _read_body(request, MAX_ARTIFACT_BYTES)
    size = await run_in_threadpool(
        _tracking.log_artifact, workspace(request), run_id, name, kind, data
    )
    return ArtifactStored(run_id=run_id, name=name, kind=kind, size=size)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass ``limit`` bytes."""

    def too_large() -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The artifact is larger than the server accepts ({limit} bytes).",
            hint="Store large files in object storage and log their location as a tag, or "
            "split the artifact.",
        )

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _micros(value: datetime | float) -> int:
    seconds = value.timestamp() if isinstance(value, datetime) else value
    if not math.isfinite(seconds) or not 0 <= seconds < 253_402_300_800:
        raise ConfigError(
            f"A metric point's timestamp ({value}) is outside years 1970 to 9999.",
            hint="Send seconds since the epoch or an ISO 8601 time, or leave it out.",
        )
    return int(seconds * 1_000_000)
