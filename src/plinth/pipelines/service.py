"""``ws.pipelines``: run pipelines, and read their runs and steps back from the catalog."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plinth.catalog.models import PipelineRun, StepRun
from plinth.errors import ConfigError, NotFoundError, PipelineError

if TYPE_CHECKING:
    from plinth.pipelines.definition import Pipeline
    from plinth.pipelines.executors import Executor
    from plinth.pipelines.results import PipelineResult
    from plinth.pipelines.runner import Event
    from plinth.workspace import Workspace

__all__ = ["PipelineRunDetail", "PipelineRunSummary", "Pipelines", "StepRunInfo"]


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


@dataclass(frozen=True)
class PipelineRunSummary:
    """One pipeline run as a list shows it; ``steps`` counts step statuses."""

    id: str
    pipeline: str
    status: str
    executor: str
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    steps: dict[str, int]
    error: str | None
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (times as ISO 8601)."""
        return _json(asdict(self))


@dataclass(frozen=True)
class StepRunInfo:
    """One step of a recorded run, as the catalog holds it."""

    name: str
    status: str
    attempts: int
    after: list[str]
    cache_key: str | None
    cached_from: str | None
    inputs: dict[str, Any] | None
    outputs: dict[str, str]
    resources: dict[str, Any] | None
    log_digest: str | None
    error: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (times as ISO 8601)."""
        return _json(asdict(self))


@dataclass(frozen=True)
class PipelineRunDetail:
    """Everything recorded about one pipeline run: parameters, DAG and steps in DAG order."""

    id: str
    pipeline: str
    reference: str
    status: str
    executor: str
    params: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    error: str | None
    created_by: str
    dag: dict[str, Any]
    steps: list[StepRunInfo]

    def step(self, name: str) -> StepRunInfo:
        """One step by name."""
        for info in self.steps:
            if info.name == name:
                return info
        raise NotFoundError(
            f"Pipeline run {self.id} has no step '{name}'.",
            hint=f"Its steps are: {', '.join(s.name for s in self.steps)}.",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (times as ISO 8601)."""
        return _json(asdict(self))


class Pipelines:
    """Run pipelines and query their recorded runs (``ws.pipelines``).

    Example:
        >>> import tempfile, plinth
        >>> ws = plinth.Workspace(tempfile.mkdtemp())
        >>> ws.pipelines.runs()
        []
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def run(
        self,
        pipeline: Pipeline | str | Callable[..., Any],
        params: Mapping[str, Any] | None = None,
        executor: str | Executor = "local",
        *,
        cache: bool = True,
        on_event: Callable[[Event], None] | None = None,
    ) -> PipelineResult:
        """Run a pipeline in this workspace (see :func:`plinth.pipelines.run`).

        Example:
            >>> # result = ws.pipelines.run("flows:train", {"lr": 0.1})
        """
        from plinth.pipelines.runner import run

        return run(pipeline, params, executor, self.ws, cache=cache, on_event=on_event)

    def _resolve(self, session: Session, run_id: str) -> PipelineRun:
        """The run with this id, or the only run whose id starts with it."""
        run = session.get(PipelineRun, run_id)
        if run is not None:
            return run
        matches = (
            session.scalars(
                select(PipelineRun)
                .where(func.substr(PipelineRun.id, 1, len(run_id)) == run_id)
                .order_by(PipelineRun.id)
                .limit(6)
            ).all()
            if run_id
            else []
        )
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(
                f"No pipeline run has the id '{run_id}'.",
                hint="List recent runs with 'plinth pipeline runs'.",
            )
        shown = ", ".join(m.id for m in matches[:5])
        raise ConfigError(
            f"The id '{run_id}' is ambiguous: it starts {len(matches)}"
            f"{' or more' if len(matches) > 5 else ''} pipeline run ids ({shown}).",
            hint="Give more characters of the id.",
        )

    def runs(self, limit: int = 20, pipeline: str | None = None) -> list[PipelineRunSummary]:
        """The most recent runs, newest first (of one pipeline when ``pipeline`` is given).

        Example:
            >>> # [r.id for r in ws.pipelines.runs(limit=5)]
        """
        query = select(PipelineRun).order_by(PipelineRun.started_at.desc(), PipelineRun.id.desc())
        if pipeline:
            query = query.where(PipelineRun.pipeline == pipeline)
        with self.ws.catalog.session() as session:
            rows = session.scalars(query.limit(max(limit, 0))).all()
            counts: dict[str, Counter[str]] = {row.id: Counter() for row in rows}
            if rows:
                for run_id, status, n in session.execute(
                    select(StepRun.pipeline_run_id, StepRun.status, func.count())
                    .where(StepRun.pipeline_run_id.in_(list(counts)))
                    .group_by(StepRun.pipeline_run_id, StepRun.status)
                ):
                    counts[run_id][status] = n
            return [
                PipelineRunSummary(
                    id=row.id,
                    pipeline=row.pipeline,
                    status=row.status,
                    executor=row.executor,
                    started_at=row.started_at,
                    ended_at=row.ended_at,
                    duration=_seconds(row.started_at, row.ended_at),
                    steps=dict(sorted(counts[row.id].items())),
                    error=row.error,
                    created_by=row.created_by,
                )
                for row in rows
            ]

    def get(self, run_id: str) -> PipelineRunDetail:
        """Everything recorded about one run (an unambiguous start of its id works too).

        Example:
            >>> # detail = ws.pipelines.get("pr_01J..."); [s.status for s in detail.steps]
        """
        with self.ws.catalog.session() as session:
            run = self._resolve(session, run_id)
            rows = {
                row.step: row
                for row in session.scalars(
                    select(StepRun).where(StepRun.pipeline_run_id == run.id)
                ).all()
            }
            dag = run.dag or {"steps": []}
            order = [spec["name"] for spec in dag.get("steps", [])]
            order += sorted(set(rows) - set(order))
            after = {spec["name"]: spec.get("after", []) for spec in dag.get("steps", [])}
            steps = [
                StepRunInfo(
                    name=name,
                    status=rows[name].status,
                    attempts=rows[name].attempts,
                    after=after.get(name, []),
                    cache_key=rows[name].cache_key,
                    cached_from=rows[name].cached_from,
                    inputs=rows[name].inputs,
                    outputs=dict(rows[name].outputs or {}),
                    resources=rows[name].resources,
                    log_digest=rows[name].log_digest,
                    error=rows[name].error,
                    started_at=rows[name].started_at,
                    ended_at=rows[name].ended_at,
                    duration=_seconds(rows[name].started_at, rows[name].ended_at),
                )
                for name in order
                if name in rows
            ]
            return PipelineRunDetail(
                id=run.id,
                pipeline=run.pipeline,
                reference=run.reference,
                status=run.status,
                executor=run.executor,
                params=dict(run.params or {}),
                started_at=run.started_at,
                ended_at=run.ended_at,
                duration=_seconds(run.started_at, run.ended_at),
                error=run.error,
                created_by=run.created_by,
                dag=dag,
                steps=steps,
            )

    def log(self, run_id: str, step: str) -> str:
        """The captured stdout and stderr of one step (all its attempts), as text.

        Example:
            >>> # print(ws.pipelines.log("pr_01J...", "train"))
        """
        info = self.get(run_id).step(step)
        if not info.log_digest:
            return ""
        return self.ws.artifacts.get_bytes(info.log_digest).decode("utf-8", "replace")

    def output(self, run_id: str, step: str, name: str | None = None) -> Any:
        """Load one output of a recorded step (its only output when ``name`` is None).

        Example:
            >>> # model = ws.pipelines.output("pr_01J...", "train")
        """
        from plinth.pipelines.serialize import load_value

        detail = self.get(run_id)
        info = detail.step(step)
        if not info.outputs:
            raise PipelineError(
                f"Step '{step}' of run {detail.id} has no outputs: it {info.status}.",
                hint=f"See 'plinth pipeline show {detail.id}'.",
            )
        if name is None:
            if len(info.outputs) != 1:
                raise PipelineError(
                    f"Step '{step}' has outputs {list(info.outputs)}; name one.",
                    hint=f"Name one: ws.pipelines.output(run_id, '{step}', NAME).",
                )
            name = next(iter(info.outputs))
        if name not in info.outputs:
            raise NotFoundError(
                f"Step '{step}' has no output '{name}'.",
                hint=f"Its outputs are: {', '.join(info.outputs)}.",
            )
        # The digest is the step's catalog record, so a pickle may be loaded.
        return load_value(self.ws.artifacts.get_bytes(info.outputs[name]), trusted=True)
