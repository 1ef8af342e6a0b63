"""Cost accounting: what runs, pipeline runs, deployments, models and storage cost, in USD.

Every figure is resources x time x the price table (:mod:`plinth.cost.prices`):

- **run**: from its recorded use, summed over its processes (ranks): CPU seconds x the
  vCPU-hour price, peak memory x wall time x the GiB-hour price, GPU seconds x the GPU-hour
  price of the run's GPU model (from its environment; ``gpu_hour`` when unknown).
- **pipeline run**: per step that ran (cached and skipped steps cost nothing), its duration x
  what it requested (``Resources``: CPUs, GPUs, memory; 2 GiB per CPU when it named none), or
  what the runs started inside it used, whichever is more.
- **deployment**: replicas x uptime x a replica's price per hour (1 vCPU and 2 GiB unless the
  spec's ``replicas`` and ``resources`` say otherwise). Uptime is not recorded; it is estimated
  (see :func:`serving_costs`). Per 1,000 predictions: the serving cost over the window divided
  by the predictions logged in it, x 1,000.
- **model**: the runs that produced its versions plus its serving.
- **storage**: lake bytes (each table's latest version) plus artifact-store bytes, priced per
  GiB-month for the window's length, at today's size.

Example:
    >>> # report = cost_report(ws, by="model", since=parse_since("30d"))
    >>> # report.total_usd, [m.per_1000 for m in report.items]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plinth._core.clock import as_utc, utcnow
from plinth.cost.prices import GIB, PriceTable, gpu_model, prices_for
from plinth.cost.standing import (
    ReplicaSize,
    ServingCost,
    StorageCost,
    per_1000,
    serving_costs,
    storage_cost,
)
from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth.workspace import Workspace


#: The groupings ``plinth cost --by`` accepts.
BY = ("run", "model", "pipeline", "deployment")
#: Memory priced for a pipeline step that requests none, per requested CPU.
STEP_MEMORY_PER_CPU = 2 * GIB
_NOT_RUN = ("cached", "skipped", "pending")


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Window:
    """The time a report covers: from ``start`` (``None``: the beginning) to ``end``."""

    start: datetime | None
    end: datetime


def _window(since: datetime | None, now: datetime | None) -> Window:
    return Window(as_utc(since) if since else None, as_utc(now) if now else utcnow())


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """The start of a ``--since``: a duration back from now (``30d``, ``12h``, ``2w``) or a date.

    Example:
        >>> from datetime import UTC
        >>> parse_since("2026-11-01").isoformat()
        '2026-11-01T00:00:00+00:00'
        >>> parse_since("1d", datetime(2026, 11, 2, tzinfo=UTC)).day
        1
    """
    from plinth.quality.contracts import parse_duration

    if text is None or not text.strip():
        return None
    now = as_utc(now) if now else utcnow()
    text = text.strip()
    start: datetime | None = None
    if text[-1:].isalpha() and text[:-1].replace(".", "", 1).isdigit():
        try:
            start = now - parse_duration(text)
        except ValueError:
            start = None
    else:
        try:
            start = as_utc(datetime.fromisoformat(text))
        except ValueError:
            start = None
        if start is not None and start > now:
            raise ConfigError(f"--since {text} is in the future.", hint="Give a past date or time.")
    if start is None:
        raise ConfigError(
            f"'{text}' is not a --since value.",
            hint="Give a duration back from now (30d, 12h, 2w) or a date (2026-11-01, UTC).",
        )
    return start


def check_window(start: datetime | None, end: datetime | None) -> None:
    """Refuse a window that starts after it ends (``None`` on either side passes).

    Example:
        >>> from datetime import UTC
        >>> check_window(datetime(2026, 1, 1, tzinfo=UTC), None)
    """
    if start is not None and end is not None and as_utc(start) > as_utc(end):
        raise ConfigError(
            f"The window starts ({as_utc(start).isoformat()}) after it ends "
            f"({as_utc(end).isoformat()}).",
            hint="Give a start before the end.",
        )


@dataclass(frozen=True)
class RunCost(_Record):
    """What one run used and cost; ``pipeline_run`` is ``PIPELINE_RUN/STEP`` it ran inside.

    ``ranks`` holds ``(wall seconds, CPU seconds, peak RSS bytes, GPU seconds)`` per process.
    """

    run_id: str
    experiment: str
    status: str
    launcher: str
    started_at: datetime
    ranks: tuple[tuple[float, float, int, float], ...]
    requested: dict[str, Any] | None
    gpu_model: str | None
    cpu_usd: float
    memory_usd: float
    gpu_usd: float
    usd: float
    model: str | None
    pipeline_run: str | None

    @property
    def wall_seconds(self) -> float:
        """The longest process's wall time."""
        return max((r[0] for r in self.ranks), default=0.0)


@dataclass(frozen=True)
class StepCost(_Record):
    """One step of a pipeline run: its duration, requests, linked runs and cost.

    ``usd`` is its reservation or, if more, what the runs started inside it used.
    """

    step: str
    status: str
    seconds: float
    cpu: float
    gpu: float
    memory: int
    runs: tuple[str, ...]
    reserved_usd: float
    runs_usd: float
    usd: float


@dataclass(frozen=True)
class PipelineRunCost(_Record):
    """A pipeline run and the cost of each of its steps (``usd`` is their sum)."""

    pipeline_run_id: str
    pipeline: str
    status: str
    started_at: datetime
    steps: tuple[StepCost, ...]
    usd: float


@dataclass(frozen=True)
class ModelCost(_Record):
    """A model's training runs (those that produced its versions), serving and their sum.

    ``per_1000`` is the serving cost per 1,000 predictions (``None`` without predictions).
    """

    model: str | None
    runs: tuple[str, ...]
    training_usd: float
    serving_usd: float
    usd: float
    predictions: int
    per_1000: float | None


@dataclass(frozen=True)
class Spend(_Record):
    """Everything spent in a window, once: runs inside a pipeline step count in that step."""

    runs_usd: float
    pipelines_usd: float
    serving_usd: float
    storage_usd: float
    total_usd: float


@dataclass(frozen=True)
class CostReport:
    """``plinth cost``: one item per run, model, pipeline run or deployment, plus the spend.

    ``price_overrides`` names the prices the settings override (those the report was priced
    with: the server's, for a report made through it).
    """

    by: str
    window: Window
    items: list[Any]
    total_usd: float
    spend: Spend
    storage: StorageCost
    price_overrides: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "by": self.by,
            "since": self.window.start,
            "until": self.window.end,
            "items": [item.to_dict() for item in self.items],
            "total_usd": self.total_usd,
            "spend": self.spend.to_dict(),
            "storage": self.storage.to_dict(),
            "price_overrides": list(self.price_overrides),
        }


def run_costs(
    ws: Workspace,
    since: datetime | None = None,
    *,
    now: datetime | None = None,
    prices: PriceTable | None = None,
) -> list[RunCost]:
    """Every run started in the window with its cost, oldest first.

    Example:
        >>> # [(r.run_id, r.usd) for r in run_costs(ws, parse_since("7d"))]
    """
    from plinth.catalog.models import ModelVersion, Run, RunResource

    prices = prices or prices_for(ws.settings)
    window = _window(since, now)
    where = [Run.started_at <= window.end]
    if window.start:
        where.append(Run.started_at >= window.start)
    with ws.catalog.session() as session:
        runs = session.execute(
            select(
                Run.id, Run.experiment, Run.status, Run.launcher, Run.started_at, Run.ended_at,
                Run.requested,
            ).where(*where).order_by(Run.started_at, Run.id)
        ).all()  # fmt: skip
        usage: dict[str, list[tuple[float, float, int, float]]] = {}
        for run_id, *use in session.execute(
            select(
                RunResource.run_id, RunResource.wall_seconds, RunResource.cpu_seconds,
                RunResource.peak_rss_bytes, RunResource.gpu_seconds,
            ).join(Run, Run.id == RunResource.run_id).where(*where).order_by(RunResource.rank)
        ):  # fmt: skip
            usage.setdefault(run_id, []).append(tuple(use))  # type: ignore[arg-type]
        on_gpu = [i for i, use in usage.items() if sum(u[3] for u in use) > 0]
        devices = {  # the (large) environment is read only for runs that used a GPU
            i: _device(env)
            for i, env in session.execute(select(Run.id, Run.environment).where(Run.id.in_(on_gpu)))
        }
        produced: dict[str, str] = {}
        for run_id, name, version in session.execute(
            select(ModelVersion.run_id, ModelVersion.model_name, ModelVersion.version)
            .where(ModelVersion.run_id.is_not(None))
            .order_by(ModelVersion.id)
        ):
            produced.setdefault(run_id, f"{name}:{version}")
    links = _step_links(ws, [(r[0], r[4], r[5]) for r in runs])
    found = []
    for run_id, experiment, status, launcher, started, _, requested in runs:
        ranks = tuple(usage.get(run_id, []))
        device = devices.get(run_id)
        gpu_s = sum(r[3] for r in ranks)
        cpu_usd = sum(r[1] for r in ranks) / 3600 * prices.cpu_core_hour
        memory_usd = sum(r[2] / GIB * r[0] / 3600 for r in ranks) * prices.memory_gb_hour
        gpu_usd = gpu_s / 3600 * prices.gpu_hour(device) if gpu_s else 0.0
        found.append(
            RunCost(
                run_id, experiment, status, launcher, started, ranks, requested,
                (gpu_model(device) or device) if gpu_s else None, cpu_usd, memory_usd, gpu_usd,
                cpu_usd + memory_usd + gpu_usd, produced.get(run_id), links.get(run_id),
            )
        )  # fmt: skip
    return found


def _device(environment: dict[str, Any] | None) -> str | None:
    """The first GPU's device name in a run's captured environment."""
    found = ((environment or {}).get("gpu") or {}).get("devices") or [{}]
    return str(found[0].get("name") or "") or None if isinstance(found[0], dict) else None


def _step_links(ws: Workspace, runs: list[tuple[str, datetime, datetime | None]]) -> dict[str, str]:
    """``run id -> "PIPELINE_RUN/STEP"`` for runs that started and ended inside a step.

    The catalog records no direct link from a step to the runs its code starts, so a run is
    taken to belong to a step that was running from before it started until after it ended.
    """
    from plinth.catalog.models import StepRun

    finished = [(i, s, e) for i, s, e in runs if e is not None]
    if not finished:
        return {}
    with ws.catalog.session() as session:
        steps = session.execute(
            select(StepRun.pipeline_run_id, StepRun.step, StepRun.started_at, StepRun.ended_at)
            .where(StepRun.status.not_in(_NOT_RUN), StepRun.started_at.is_not(None))
            .where(StepRun.ended_at >= min(s for _, s, _ in finished))
        ).all()
    links: dict[str, str] = {}
    for run_id, started, ended in finished:
        inside = [s for s in steps if s[2] <= started and ended <= s[3]]
        if inside:
            best = max(inside, key=lambda s: s[2])
            links[run_id] = f"{best[0]}/{best[1]}"
    return links


def pipeline_costs(
    ws: Workspace,
    since: datetime | None = None,
    *,
    now: datetime | None = None,
    prices: PriceTable | None = None,
    runs: list[RunCost] | None = None,
) -> list[PipelineRunCost]:
    """Every pipeline run started in the window with the cost of its steps, oldest first.

    Example:
        >>> # [(p.pipeline, p.usd) for p in pipeline_costs(ws)]
    """
    from plinth.catalog.models import PipelineRun, StepRun

    prices = prices or prices_for(ws.settings)
    window = _window(since, now)
    runs = runs if runs is not None else run_costs(ws, since, now=window.end, prices=prices)
    inside: dict[str, list[RunCost]] = {}
    for run in runs:
        inside.setdefault(run.pipeline_run or "", []).append(run)
    where = [PipelineRun.started_at <= window.end]
    if window.start:
        where.append(PipelineRun.started_at >= window.start)
    with ws.catalog.session() as session:
        pipeline_runs = session.execute(
            select(PipelineRun.id, PipelineRun.pipeline, PipelineRun.status, PipelineRun.started_at)
            .where(*where)
            .order_by(PipelineRun.started_at, PipelineRun.id)
        ).all()
        steps: dict[str, list[Any]] = {}
        for row in session.execute(
            select(
                StepRun.pipeline_run_id, StepRun.step, StepRun.status, StepRun.started_at,
                StepRun.ended_at, StepRun.resources,
            ).join(PipelineRun, PipelineRun.id == StepRun.pipeline_run_id).where(*where)
            .order_by(StepRun.id)
        ):  # fmt: skip
            steps.setdefault(row[0], []).append(row[1:])
    found = []
    for run_id, pipeline, status, started in pipeline_runs:
        costs = []
        for step, step_status, began, ended, asked in steps.get(run_id, []):
            seconds = 0.0
            if step_status not in _NOT_RUN and began is not None:
                seconds = max(0.0, ((ended or window.end) - began).total_seconds())
            asked = asked or {}
            cpu, gpu = float(asked.get("cpu") or 0), float(asked.get("gpu") or 0)
            memory = int(asked.get("memory") or cpu * STEP_MEMORY_PER_CPU)
            reserved = ReplicaSize(cpu, memory, gpu).usd_per_hour(prices) * seconds / 3600
            linked = inside.get(f"{run_id}/{step}", [])
            used = sum(r.usd for r in linked)
            costs.append(
                StepCost(
                    step, step_status, seconds, cpu, gpu, memory,
                    tuple(r.run_id for r in linked), reserved, used, max(reserved, used),
                )
            )  # fmt: skip
        usd = sum(c.usd for c in costs)
        found.append(PipelineRunCost(run_id, pipeline, status, started, tuple(costs), usd))
    return found


def model_costs(
    ws: Workspace,
    since: datetime | None = None,
    *,
    now: datetime | None = None,
    prices: PriceTable | None = None,
    runs: list[RunCost] | None = None,
    serving: list[ServingCost] | None = None,
) -> list[ModelCost]:
    """Per model: the runs that produced its versions, its serving, per 1,000 predictions.

    Runs that produced no registered version are gathered last, in one row with ``model`` None.

    Example:
        >>> # {m.model: m.per_1000 for m in model_costs(ws)}
    """
    prices = prices or prices_for(ws.settings)
    window = _window(since, now)
    if runs is None:
        runs = run_costs(ws, since, now=window.end, prices=prices)
    if serving is None:
        serving = serving_costs(ws, since, now=window.end, prices=prices)
    trained: dict[str | None, list[RunCost]] = {}
    for run in runs:
        trained.setdefault(run.model.rsplit(":", 1)[0] if run.model else None, []).append(run)
    served: dict[str, list[ServingCost]] = {}
    for s in serving:
        served.setdefault(s.model, []).append(s)
    found = []
    for name in [*sorted({m for m in trained if m} | set(served)), None]:
        own, cost = trained.get(name, []), served.get(name or "", [])
        if name is None and not own:
            continue
        training, serving_usd = sum((r.usd for r in own), 0.0), sum((s.usd for s in cost), 0.0)
        predictions = max((s.predictions for s in cost), default=0)
        found.append(
            ModelCost(
                name, tuple(r.run_id for r in own), training, serving_usd, training + serving_usd,
                predictions, per_1000(serving_usd, predictions),
            )
        )  # fmt: skip
    return found


def spend(
    runs: list[RunCost],
    pipelines: list[PipelineRunCost],
    serving: list[ServingCost],
    storage: StorageCost,
) -> Spend:
    """Total spend from the parts, runs inside pipeline steps counted once (in their step).

    Example:
        >>> spend([], [], [], StorageCost(0, 0, 0.0, 0.0, 0.0)).total_usd
        0.0
    """
    counted = {p.pipeline_run_id for p in pipelines}
    alone = [r for r in runs if (r.pipeline_run or "/").split("/")[0] not in counted]
    parts = (
        sum(r.usd for r in alone),
        sum(p.usd for p in pipelines),
        sum(s.usd for s in serving),
        storage.usd,
    )
    return Spend(*parts, sum(parts))


def cost_report(
    ws: Workspace,
    by: str = "model",
    since: datetime | None = None,
    *,
    now: datetime | None = None,
    prices: PriceTable | None = None,
) -> CostReport:
    """Costs in the window grouped ``by`` run, model, pipeline or deployment, and the spend.

    Example:
        >>> # cost_report(ws, by="deployment", since=parse_since("30d")).items[0].per_1000
    """
    if by not in BY:
        raise ConfigError(f"Cannot group costs by '{by}'.", hint=f"Use one of: {', '.join(BY)}.")
    prices = prices or prices_for(ws.settings)
    window = _window(since, now)
    check_window(window.start, window.end)
    options: dict[str, Any] = {"now": window.end, "prices": prices}
    runs = run_costs(ws, window.start, **options)
    pipelines = pipeline_costs(ws, window.start, runs=runs, **options)
    serving = serving_costs(ws, window.start, **options)
    storage = storage_cost(ws, window.start, **options)
    items: list[Any]
    if by == "model":
        items = model_costs(ws, window.start, runs=runs, serving=serving, **options)
    else:
        items = {"run": runs, "pipeline": pipelines, "deployment": serving}[by]
    total = sum(item.usd for item in items)
    overrides = tuple(sorted(key for key, price in prices.items() if price.overridden))
    parts = spend(runs, pipelines, serving, storage)
    return CostReport(by, window, items, total, parts, storage, overrides)
