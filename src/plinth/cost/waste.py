"""Waste: how much of what runs and deployments requested they used, and the money left idle.

Utilization is used / requested, per resource:

- **run** (one launched by ``plinth train`` or a tuning trial, which records ``--cpus``,
  ``--gpus`` and ``--memory`` per process, 1 CPU by default): CPU seconds / (wall x CPUs),
  peak memory / memory (when memory was requested), GPU seconds / (wall x GPUs) (when GPUs
  were requested), summed over its processes. Runs that requested nothing (``ws.run`` in a
  script) and tuning parents (whose request is per trial) are not judged; their trials are.
- **deployment**: busy share = the summed latency of its logged requests / (uptime x replicas
  x CPUs per replica). Memory and GPU use of servers are not recorded.

The overall utilization weighs each resource by its price: used cost / requested cost. Below
``IDLE`` (10%) the run or deployment is *idle*; below ``OVER_PROVISIONED`` (50%) it is
*over-provisioned*. The money wasted is the requested cost less the used cost.

Example:
    >>> # report = waste_report(ws, since=parse_since("30d"))
    >>> # [(w.name, w.verdict, w.wasted_usd) for w in report.flagged]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plinth.cost.accounting import RunCost, run_costs
from plinth.cost.prices import GIB, PriceTable, prices_for
from plinth.cost.standing import ServingCost, serving_costs

if TYPE_CHECKING:
    from plinth.workspace import Workspace

__all__ = [
    "IDLE",
    "OVER_PROVISIONED",
    "Utilization",
    "WasteReport",
    "deployment_utilization",
    "run_utilization",
    "verdict",
    "waste_report",
]

#: Below this overall utilization a run or deployment is idle.
IDLE = 0.10
#: Below this overall utilization a run or deployment is over-provisioned.
OVER_PROVISIONED = 0.50


def verdict(utilization: float) -> str:
    """``idle``, ``over-provisioned`` or ``ok`` for an overall utilization (0 to 1).

    Example:
        >>> verdict(0.05), verdict(0.3), verdict(0.8)
        ('idle', 'over-provisioned', 'ok')
    """
    if utilization < IDLE:
        return "idle"
    return "over-provisioned" if utilization < OVER_PROVISIONED else "ok"


@dataclass(frozen=True)
class Utilization:
    """What a run or deployment used of what it requested, and the money left unused.

    ``cpu``, ``memory`` and ``gpu`` are shares (0 to 1), ``None`` where nothing was requested
    or the use is not recorded.
    """

    kind: str
    name: str
    detail: str
    cpu: float | None
    memory: float | None
    gpu: float | None
    utilization: float
    requested_usd: float
    used_usd: float
    wasted_usd: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """The utilization as JSON-ready data."""
        return asdict(self)


def _share(used: float, asked: float) -> float | None:
    return min(1.0, used / asked) if asked > 0 else None


def run_utilization(run: RunCost, prices: PriceTable) -> Utilization | None:
    """A launched run's utilization of its requested CPUs, memory and GPUs (``None``: not judged).

    Example:
        >>> # run_utilization(run_costs(ws)[0], price_table()).verdict
    """
    asked = run.requested or {}
    if not asked or run.launcher == "tune" or not run.ranks:
        return None
    cpus = float(asked.get("cpus") or 0)
    gpus = float(asked.get("gpus") or 0)
    memory = float(asked.get("memory") or 0)
    gpu_price = prices.gpu_hour(run.gpu_model)
    cpu_asked = sum(wall * cpus for wall, *_ in run.ranks)
    cpu_used = sum(min(cpu, wall * cpus) for wall, cpu, _, _ in run.ranks)
    mem_asked = sum(memory / GIB * wall for wall, *_ in run.ranks) / 3600
    mem_used = sum(min(peak, memory) / GIB * wall for wall, _, peak, _ in run.ranks) / 3600
    gpu_asked = sum(wall * gpus for wall, *_ in run.ranks)
    gpu_used = sum(min(gpu, wall * gpus) for wall, _, _, gpu in run.ranks)
    requested = (
        cpu_asked / 3600 * prices.cpu_core_hour
        + mem_asked * prices.memory_gb_hour
        + gpu_asked / 3600 * gpu_price
    )
    used = (
        cpu_used / 3600 * prices.cpu_core_hour
        + mem_used * prices.memory_gb_hour
        + gpu_used / 3600 * gpu_price
    )
    if requested <= 0:
        return None
    overall = used / requested
    return Utilization(
        "run",
        run.run_id,
        run.experiment,
        _share(cpu_used, cpu_asked),
        _share(mem_used, mem_asked),
        _share(gpu_used, gpu_asked),
        overall,
        requested,
        used,
        requested - used,
        verdict(overall),
    )


def deployment_utilization(serving: ServingCost) -> Utilization | None:
    """A deployment's busy share over its estimated uptime (``None`` without uptime).

    Example:
        >>> # deployment_utilization(serving_costs(ws)[0]).verdict
    """
    capacity = serving.uptime_seconds * serving.replicas * max(1.0, serving.replica.cpu)
    if capacity <= 0 or serving.usd <= 0:
        return None
    busy = min(1.0, serving.busy_seconds / capacity)
    used = serving.usd * busy
    return Utilization(
        "deployment",
        serving.name,
        serving.model,
        busy,
        None,
        None,
        busy,
        serving.usd,
        used,
        serving.usd - used,
        verdict(busy),
    )


@dataclass(frozen=True)
class WasteReport:
    """Every judged run and deployment, most money wasted first."""

    items: list[Utilization]

    @property
    def flagged(self) -> list[Utilization]:
        """The idle and over-provisioned ones."""
        return [u for u in self.items if u.verdict != "ok"]

    @property
    def wasted_usd(self) -> float:
        """Money requested but not used, over every judged item."""
        return sum((u.wasted_usd for u in self.items), 0.0)

    @property
    def requested_usd(self) -> float:
        """Money requested, over every judged item."""
        return sum((u.requested_usd for u in self.items), 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "thresholds": {"idle": IDLE, "over_provisioned": OVER_PROVISIONED},
            "items": [u.to_dict() for u in self.items],
            "requested_usd": self.requested_usd,
            "wasted_usd": self.wasted_usd,
        }


def waste_report(
    ws: Workspace,
    since: datetime | None = None,
    *,
    now: datetime | None = None,
    prices: PriceTable | None = None,
) -> WasteReport:
    """Utilization of the runs started and the deployments serving in the window.

    Example:
        >>> # waste_report(ws).flagged
    """
    prices = prices or prices_for(ws.settings)
    found: list[Utilization | None] = [
        run_utilization(r, prices) for r in run_costs(ws, since, now=now, prices=prices)
    ]
    found += [deployment_utilization(s) for s in serving_costs(ws, since, now=now, prices=prices)]
    items = [u for u in found if u is not None]
    return WasteReport(sorted(items, key=lambda u: (-u.wasted_usd, u.kind, u.name)))
