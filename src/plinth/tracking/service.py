"""Reading tracked runs: list with filters and sorting, details, comparisons, series, charts.

:class:`Runs` is the read side of experiment tracking (``ws.runs``). Every method opens one
catalog session; lists load the page of runs first and then its parameters, metrics and tags
in one query each, so a page costs four queries however many runs it holds.
:func:`audit_run_start` and :func:`audit_run_end` append a run's start and end to the audit
chain, inside the transaction that writes the run row.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, load_only

from plinth._core.urls import redact_text
from plinth.catalog import audit
from plinth.catalog.lineage import Edge, Node, walk
from plinth.catalog.models import (
    Run,
    RunArtifact,
    RunMetric,
    RunParam,
    RunResource,
    RunTag,
)
from plinth.errors import ConfigError, NotFoundError, RunNotFoundError
from plinth.tracking.history import MetricHistory, metric_history
from plinth.tracking.query import build_query

if TYPE_CHECKING:
    from plinth.workspace import Workspace

__all__ = [
    "ArtifactInfo",
    "Comparison",
    "ComparisonRow",
    "MetricSummary",
    "ResourceInfo",
    "RunDetail",
    "RunSummary",
    "Runs",
    "audit_run_end",
    "audit_run_start",
    "compare_summaries",
    "compared_ids",
    "plot_runs",
]

#: Most run ids one comparison or chart takes.
MAX_COMPARE = 50
#: How far upstream ``get`` follows a run's lineage: run <- training set <- table version <- file.
INPUT_DEPTH = 3
#: The run columns a summary needs; lists load only these.
SUMMARY_COLUMNS = (
    Run.id,
    Run.experiment,
    Run.status,
    Run.started_at,
    Run.ended_at,
    Run.parent_id,
)


def _json_value(value: Any) -> Any:
    """A value ready for JSON: non-finite floats become None, times ISO strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class RunSummary:
    """One run as a list shows it: attributes, parameters, last metric values and tags.

    ``duration`` is in seconds (None while the run has not ended); a metric whose last value
    was NaN reads ``float('nan')``.
    """

    id: str
    experiment: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    parent_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data (times as ISO 8601, NaN and infinities as None).

        Example:
            >>> # json.dumps(ws.runs.list(limit=1)[0].to_dict())
        """
        return _json_value(asdict(self))


@dataclass(frozen=True)
class MetricSummary:
    """A metric series' summary: its last value and step, lowest and highest value, points."""

    last: float
    last_step: int
    min: float
    max: float
    count: int


@dataclass(frozen=True)
class ArtifactInfo:
    """A file or object a run logged."""

    name: str
    kind: str
    digest: str
    size: int
    created_at: datetime


@dataclass(frozen=True)
class ResourceInfo:
    """The resource use of one process (rank) of a run."""

    rank: int
    host: str
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    gpu_count: int
    gpu_seconds: float
    gpu_peak_bytes: int


@dataclass(frozen=True)
class RunDetail(RunSummary):
    """Everything recorded about one run: its summary plus how it ran and what it used.

    ``inputs`` are the lineage edges upstream of the run, up to ``INPUT_DEPTH`` hops: what it
    read (training sets, table versions) and what those came from (the table versions and
    feature view versions of a training set, the files of a table version); ``children`` are
    the ids of runs whose parent it is, oldest first.
    """

    launcher: str
    entry_point: str | None
    arguments: list[Any] | None
    created_by: str
    environment: dict[str, Any] | None
    requested: dict[str, Any] | None
    error: str | None
    metric_summaries: dict[str, MetricSummary]
    artifacts: list[ArtifactInfo]
    resources: list[ResourceInfo]
    inputs: list[Edge]
    children: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data; lineage nodes are written as ``kind:id``.

        Example:
            >>> # json.dumps(ws.runs.get(run_id).to_dict())
        """
        data = asdict(self)
        data["inputs"] = [
            {
                "source": str(e.source),
                "target": str(e.target),
                "relation": e.relation,
                "details": e.details,
            }
            for e in self.inputs
        ]
        return _json_value(data)


@dataclass(frozen=True)
class ComparisonRow:
    """One line of a comparison: a section, a key, one value per run, and whether they differ."""

    section: str
    key: str
    values: list[Any]
    differs: bool


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: attributes, then parameters, then last metric values, one column each.

    A value is None where a run lacks the key.

    Example:
        >>> c = Comparison(["a", "b"], [ComparisonRow("param", "lr", ["0.1", "0.2"], True)])
        >>> c.to_dict()["params"]
        {'lr': ['0.1', '0.2']}
    """

    run_ids: list[str]
    rows: list[ComparisonRow]

    def section(self, name: str) -> list[ComparisonRow]:
        """The rows of one section: ``attribute``, ``param`` or ``metric``."""
        return [row for row in self.rows if row.section == name]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data, one mapping of key to values per section."""
        out: dict[str, Any] = {"runs": self.run_ids}
        sections = (("attribute", "attributes"), ("param", "params"), ("metric", "metrics"))
        for section, name in sections:
            out[name] = {row.key: row.values for row in self.section(section)}
        out["differs"] = [f"{row.section}:{row.key}" for row in self.rows if row.differs]
        return _json_value(out)


def _differs(values: Sequence[Any]) -> bool:
    def norm(value: Any) -> Any:
        return "nan" if isinstance(value, float) and math.isnan(value) else value

    return len({repr(norm(v)) for v in values}) > 1


def _duration(run: Run) -> float | None:
    if run.ended_at is None:
        return None
    return (run.ended_at - run.started_at).total_seconds()


def _not_found(run_id: str) -> RunNotFoundError:
    return RunNotFoundError(
        f"No run has the id '{run_id}'.",
        hint="Run 'plinth runs list' to see the runs; an unambiguous start of an id works too.",
    )


class Runs:
    """The tracked runs of one workspace: query, inspect, compare and chart them.

    Example:
        >>> # runs = Runs(ws)
        >>> # best = runs.list(filter="metrics.auc > 0.7", sort="metrics.auc desc", limit=5)
        >>> # runs.plot([r.id for r in best], ["auc", "loss"], "best.html")
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- lookups ---------------------------------------------------------------------------

    def _resolve(self, session: Session, run_id: str) -> Run:
        """The run with this id, or the only run whose id starts with it."""
        run = session.get(Run, run_id)
        if run is not None:
            return run
        if not run_id:
            raise _not_found(run_id)
        # substr, not LIKE: exact and case-sensitive on SQLite and PostgreSQL alike.
        matches = session.scalars(
            select(Run)
            .where(func.substr(Run.id, 1, len(run_id)) == run_id)
            .order_by(Run.id)
            .limit(6)
        ).all()
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise _not_found(run_id)
        shown = ", ".join(m.id for m in matches[:5])
        raise ConfigError(
            f"The id '{run_id}' is ambiguous: it starts {len(matches)}"
            f"{' or more' if len(matches) > 5 else ''} run ids ({shown}).",
            hint="Give more characters of the id.",
        )

    def _summaries(self, session: Session, runs: Sequence[Run]) -> list[RunSummary]:
        ids = [run.id for run in runs]
        params: dict[str, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        for chunk in _chunks(ids, 500):
            for run_id, key, value in session.execute(
                select(RunParam.run_id, RunParam.key, RunParam.value)
                .where(RunParam.run_id.in_(chunk))
                .order_by(RunParam.key)
            ):
                params[run_id][key] = value
            for run_id, key, last in session.execute(
                select(RunMetric.run_id, RunMetric.key, RunMetric.last)
                .where(RunMetric.run_id.in_(chunk))
                .order_by(RunMetric.key)
            ):
                metrics[run_id][key] = _float(last)
            for run_id, key, value in session.execute(
                select(RunTag.run_id, RunTag.key, RunTag.value)
                .where(RunTag.run_id.in_(chunk))
                .order_by(RunTag.key)
            ):
                tags[run_id][key] = value
        return [
            RunSummary(
                id=run.id,
                experiment=run.experiment,
                status=run.status,
                started_at=run.started_at,
                ended_at=run.ended_at,
                duration=_duration(run),
                params=params[run.id],
                metrics=metrics[run.id],
                tags=tags[run.id],
                parent_id=run.parent_id,
            )
            for run in runs
        ]

    # -- public API ------------------------------------------------------------------------

    def list(
        self,
        filter: str | None = None,
        sort: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Runs matching ``filter``, ordered by ``sort`` (newest first by default), one page.

        The filter and sort languages are described in :mod:`plinth.tracking.query`; a
        malformed one raises :class:`~plinth.errors.ConfigError` naming the bad token.

        Example:
            >>> # ws.runs.list("metrics.auc > 0.7 and params.lr = 0.1", "metrics.auc desc", 10)
        """
        # The JSON columns (environment with its package list, ...) stay in the database.
        statement = build_query(filter, sort, limit, offset).options(
            load_only(*SUMMARY_COLUMNS, raiseload=True)
        )
        with self.ws.catalog.session() as session:
            runs = session.scalars(statement).all()
            return self._summaries(session, runs)

    def get(self, run_id: str) -> RunDetail:
        """Everything recorded about one run (an unambiguous start of its id works too).

        Raises :class:`~plinth.errors.RunNotFoundError` when no run has that id.

        Example:
            >>> # detail = ws.runs.get("run_01JD..."); detail.params, detail.metric_summaries
        """
        with self.ws.catalog.session() as session:
            run = self._resolve(session, run_id)
            summary = self._summaries(session, [run])[0]
            metric_rows = session.scalars(
                select(RunMetric).where(RunMetric.run_id == run.id).order_by(RunMetric.key)
            ).all()
            artifacts = session.scalars(
                select(RunArtifact).where(RunArtifact.run_id == run.id).order_by(RunArtifact.name)
            ).all()
            resources = session.scalars(
                select(RunResource).where(RunResource.run_id == run.id).order_by(RunResource.rank)
            ).all()
            edges = walk(session, Node("run", run.id), "up", depth=INPUT_DEPTH)
            children = session.scalars(
                select(Run.id).where(Run.parent_id == run.id).order_by(Run.started_at, Run.id)
            ).all()
            fields = {name: getattr(summary, name) for name in summary.__dataclass_fields__}
            return RunDetail(
                **fields,
                launcher=run.launcher,
                entry_point=run.entry_point,
                arguments=run.arguments,
                created_by=run.created_by,
                environment=run.environment,
                requested=run.requested,
                error=run.error,
                metric_summaries={
                    m.key: MetricSummary(
                        last=_float(m.last),
                        last_step=int(m.last_step),
                        min=_float(m.min),
                        max=_float(m.max),
                        count=int(m.count),
                    )
                    for m in metric_rows
                },
                artifacts=[
                    ArtifactInfo(a.name, a.kind, a.digest, int(a.size), a.created_at)
                    for a in artifacts
                ],
                resources=[
                    ResourceInfo(
                        rank=r.rank,
                        host=r.host,
                        wall_seconds=r.wall_seconds,
                        cpu_seconds=r.cpu_seconds,
                        peak_rss_bytes=int(r.peak_rss_bytes),
                        gpu_count=r.gpu_count,
                        gpu_seconds=r.gpu_seconds,
                        gpu_peak_bytes=int(r.gpu_peak_bytes),
                    )
                    for r in resources
                ],
                inputs=list(edges),
                children=list(children),
            )

    def _many(self, session: Session, run_ids: Iterable[str]) -> list[Run]:
        runs = [self._resolve(session, run_id) for run_id in compared_ids(run_ids)]
        return list({run.id: run for run in runs}.values())

    def compare(self, run_ids: Sequence[str]) -> Comparison:
        """Put runs side by side: attributes, parameters and last metric values.

        Raises :class:`~plinth.errors.RunNotFoundError` naming the first unknown id.

        Example:
            >>> # table = ws.runs.compare([a.id, b.id]); [r.key for r in table.rows if r.differs]
        """
        with self.ws.catalog.session() as session:
            summaries = self._summaries(session, self._many(session, run_ids))
        return compare_summaries(summaries)

    def history(self, run_id: str, key: str, max_points: int = 1000) -> MetricHistory:
        """One metric series of a run, downsampled on the server to at most ``max_points``.

        See :func:`plinth.tracking.history.metric_history`.

        Example:
            >>> # loss = ws.runs.history(run_id, "loss"); loss.steps[-1], loss.values[-1]
        """
        with self.ws.catalog.session() as session:
            run = self._resolve(session, run_id)
            return metric_history(session, run.id, key, max_points)

    def plot(
        self,
        run_ids: Sequence[str],
        keys: Sequence[str] | None = None,
        path: str | os.PathLike[str] = "runs.html",
        max_points: int = 1000,
    ) -> Path:
        """Chart metric series of runs, one chart per key; HTML with inline SVG, or PNG.

        ``keys`` defaults to every metric any of the runs logged. A run that lacks one of the
        keys is left out of that chart; a key no run has is an error. A path ending in
        ``.png`` writes a PNG (needs the ``plot`` extra); ``.html`` writes a page without
        scripts.

        Example:
            >>> # ws.runs.plot([a.id, b.id], ["loss", "auc"], "compare.html")
        """
        with self.ws.catalog.session() as session:
            runs = self._many(session, run_ids)
            ids = [run.id for run in runs]
            logged: dict[str, set[str]] = {i: set() for i in ids}
            for run_id, key in session.execute(
                select(RunMetric.run_id, RunMetric.key).where(RunMetric.run_id.in_(ids))
            ):
                logged[run_id].add(key)
            charted = [(run.id, run.experiment, logged[run.id]) for run in runs]
            return plot_runs(
                charted,
                keys,
                lambda run_id, key: metric_history(session, run_id, key, max_points),
                path,
            )


def compared_ids(run_ids: Iterable[str]) -> list[str]:
    """The distinct ids of runs to put side by side; ConfigError for none or too many.

    Example:
        >>> compared_ids(["a", "b", "a"])
        ['a', 'b']
    """
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        raise ConfigError("No run ids were given.", hint="Name at least one run id.")
    if len(ids) > MAX_COMPARE:
        raise ConfigError(
            f"{len(ids)} runs were given; at most {MAX_COMPARE} fit side by side.",
            hint="Narrow the selection with 'plinth runs list --filter ...'.",
        )
    return ids


def compare_summaries(summaries: Sequence[RunSummary]) -> Comparison:
    """Runs side by side from their summaries: attributes, parameters, last metric values.

    Example:
        >>> # compare_summaries([ws.runs.get(a), ws.runs.get(b)]).to_dict()["differs"]
    """
    rows: list[ComparisonRow] = []

    def add(section: str, key: str, values: list[Any]) -> None:
        rows.append(ComparisonRow(section, key, values, _differs(values)))

    add("attribute", "experiment", [s.experiment for s in summaries])
    add("attribute", "status", [s.status for s in summaries])
    add("attribute", "started_at", [s.started_at for s in summaries])
    add("attribute", "duration", [s.duration for s in summaries])
    for key in sorted({k for s in summaries for k in s.params}):
        add("param", key, [s.params.get(key) for s in summaries])
    for key in sorted({k for s in summaries for k in s.metrics}):
        add("metric", key, [s.metrics.get(key) for s in summaries])
    return Comparison([s.id for s in summaries], rows)


def plot_runs(
    runs: Sequence[tuple[str, str, set[str]]],
    keys: Sequence[str] | None,
    history: Callable[[str, str], MetricHistory],
    path: str | os.PathLike[str] = "runs.html",
) -> Path:
    """Chart runs, given as ``(run id, experiment, metric keys it logged)``, fetching each
    series with ``history(run_id, key)``; see :meth:`Runs.plot` for the rules.

    Example:
        >>> # plot_runs([(run.id, run.experiment, {"loss"})], ["loss"], fetch, "loss.html")
    """
    from plinth.tracking.plot import write_plot

    logged = {run_id: set(found) for run_id, _, found in runs}
    everything = sorted(set().union(*logged.values()))
    wanted = list(dict.fromkeys(keys)) if keys else everything
    if not wanted:
        raise NotFoundError(
            "The runs have logged no metrics, so there is nothing to chart.",
            hint="Log metrics with run.log(...) first.",
        )
    unknown = [k for k in wanted if k not in everything]
    if unknown:
        raise NotFoundError(
            f"None of the runs has the metric '{unknown[0]}'.",
            hint=f"Their metrics are: {', '.join(everything) or 'none'}.",
        )
    histories = [
        history(run_id, key) for key in wanted for run_id, _, _ in runs if key in logged[run_id]
    ]
    labels = {run_id: f"{run_id} ({experiment})" for run_id, experiment, _ in runs}
    title = f"Metrics of {len(runs)} run{'s' if len(runs) != 1 else ''}"
    return write_plot(histories, path, labels=labels, title=title)


def audit_run_start(session: Session, run: Run) -> None:
    """Append ``run.start`` for a run row just added, in the same transaction.

    Example:
        >>> # with ws.catalog.session() as s:
        >>> #     s.add(row := Run(id=run_id, ..., created_by=ws.settings.user))
        >>> #     audit_run_start(s, row)
    """
    audit.record(
        session,
        actor=run.created_by,
        action="run.start",
        resource=f"run:{run.id}",
        details={"experiment": run.experiment, "launcher": run.launcher, "parent": run.parent_id},
    )


def audit_run_end(session: Session, run: Run, actor: str | None = None) -> None:
    """Append ``run.end`` with the status just set on a run row, in the same transaction.

    ``actor`` defaults to the user who started the run.

    Example:
        >>> # with ws.catalog.session() as s:
        >>> #     row = s.get(Run, run_id); row.status = "finished"
        >>> #     audit_run_end(s, row, ws.settings.user)
    """
    audit.record(
        session,
        actor=actor or run.created_by,
        action="run.end",
        resource=f"run:{run.id}",
        details={
            "status": run.status,
            "error": redact_text(run.error)[:500] if run.error else None,
        },
    )


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
