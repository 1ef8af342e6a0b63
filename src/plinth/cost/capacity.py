"""Capacity planning: how many replicas serve a target rate within a latency SLO.

The input is a load test of **one** server (one replica, as ``plinth serve`` runs in one pod):
a series of steps, each offering a fixed request rate and recording the rate achieved, the
errors and the latency percentiles. The load generator (:mod:`plinth.serving.loadgen`) writes
it as JSON::

    {"url": "http://127.0.0.1:8080/v1/models/delay/predict", "model": "delay", "workers": 1,
     "cpus": 2, "started_at": "2026-11-27T07:00:00+00:00",
     "steps": [{"rate": 100.0, "achieved": 99.8, "duration_s": 10.0, "requests": 998,
                "errors": 0, "p50_ms": 1.1, "p95_ms": 1.9, "p99_ms": 2.5, "max_ms": 7.0}]}

The method, in :func:`capacity`:

1. A step is **usable** when it had no errors, its p99 latency was within the SLO, and it was
   not saturated: the server kept up, achieving at least 95 % of the offered rate.
2. The **sustainable rate** of one replica is the highest achieved rate of a usable step.
   Steps are not interpolated: the true limit lies somewhere between that step and the next
   tested rate, so a tested point is the conservative choice (test finer steps for a tighter
   plan).
3. ``replicas = max(min_replicas, ceil(target_qps / (sustainable * headroom)))``. The headroom
   (default 0.7) keeps each replica at or below 70 % of its sustainable rate, for bursts,
   uneven load balancing and a replica lost during a rollout or a node drain.
4. Replicas are assumed to scale out linearly: N replicas sustain N times the rate of one.
   That holds while what they share (catalog, online feature store, the network) keeps up; a
   target beyond the highest rate tested is marked ``extrapolated``.

Example:
    >>> result = LoadTestResult.from_dict({"url": "u", "model": "m", "workers": 1, "cpus": 2,
    ...     "started_at": "t", "steps": [
    ...     {"rate": 100.0, "achieved": 99.8, "duration_s": 10.0, "requests": 998, "errors": 0,
    ...      "p50_ms": 1.1, "p95_ms": 1.9, "p99_ms": 2.5, "max_ms": 7.0}]})
    >>> capacity(result, target_qps=500, slo_p99_ms=10).replicas
    8
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plinth.errors import ConfigError
from plinth.serving.load_result import LoadStep, LoadTestResult

__all__ = ["CapacityPlan", "LoadStep", "LoadTestResult", "capacity"]


@dataclass(frozen=True)
class CapacityPlan:
    """How many replicas serve ``target_qps`` within ``slo_p99_ms``, and why.

    ``sustainable_qps`` is what one replica (``workers`` processes on ``cpus`` cores, as load
    tested) served within the SLO, measured at ``step``; ``per_replica_qps`` the load each of
    the ``replicas`` carries at the target; ``utilisation`` that load as a fraction of the
    sustainable rate. ``extrapolated`` is true when the target lies beyond the highest rate
    tested, relying on linear scale-out. ``notes`` holds warnings about the measurements.
    """

    target_qps: float
    slo_p99_ms: float
    headroom: float
    min_replicas: int
    replicas: int
    sustainable_qps: float
    step: LoadStep
    per_replica_qps: float
    utilisation: float
    extrapolated: bool
    model: str | None
    workers: int
    cpus: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data.

        Example:
            >>> # capacity("loadtest.json", target_qps=500, slo_p99_ms=50).to_dict()["replicas"]
        """
        return {
            "target_qps": self.target_qps,
            "slo_p99_ms": self.slo_p99_ms,
            "headroom": self.headroom,
            "min_replicas": self.min_replicas,
            "replicas": self.replicas,
            "sustainable_qps": self.sustainable_qps,
            "step": self.step.to_dict(),
            "per_replica_qps": round(self.per_replica_qps, 3),
            "utilisation": round(self.utilisation, 4),
            "extrapolated": self.extrapolated,
            "model": self.model,
            "workers": self.workers,
            "cpus": self.cpus,
            "assumption": "Replicas scale out linearly: N replicas sustain N times the rate of "
            "one, while the shared catalog, online store and network keep up.",
            "notes": list(self.notes),
        }


def _as_result(
    result: LoadTestResult | Mapping[str, Any] | str | os.PathLike[str],
) -> LoadTestResult:
    if isinstance(result, LoadTestResult):
        return result
    if isinstance(result, str | os.PathLike):
        return LoadTestResult.load(result)
    return LoadTestResult.from_dict(result)


def _check_positive(name: str, value: Any, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, not {value!r}.", hint=hint)
    return float(value)


def capacity(
    result: LoadTestResult | Mapping[str, Any] | str | os.PathLike[str],
    *,
    target_qps: float,
    slo_p99_ms: float,
    headroom: float = 0.7,
    min_replicas: int = 1,
) -> CapacityPlan:
    """Plan the replicas that serve ``target_qps`` requests/s with p99 latency ≤ ``slo_p99_ms``.

    ``result`` is a :class:`LoadTestResult`, its dict form, or the path of its JSON file. See
    the module docstring for the method. Raise :class:`ConfigError` when no tested step meets
    the SLO without errors or saturation.

    Example:
        >>> steps = [{"rate": r, "achieved": a, "duration_s": 10, "requests": int(a * 10),
        ...           "errors": 0, "p50_ms": 1, "p95_ms": 2, "p99_ms": p, "max_ms": 9}
        ...          for r, a, p in [(100, 100, 3), (200, 199, 8), (400, 310, 90)]]
        >>> data = {"url": "u", "model": "m", "workers": 1, "cpus": 2,
        ...         "started_at": "t", "steps": steps}
        >>> plan = capacity(data, target_qps=1000, slo_p99_ms=20)
        >>> plan.sustainable_qps, plan.replicas
        (199.0, 8)
    """
    loaded = _as_result(result)
    target = _check_positive("target_qps", target_qps, "Give the requests per second to serve.")
    slo = _check_positive("slo_p99_ms", slo_p99_ms, "Give the p99 latency goal in ms, like 50.")
    if isinstance(headroom, bool) or not isinstance(headroom, int | float) or not 0 < headroom <= 1:
        raise ConfigError(
            f"headroom must be more than 0 and at most 1, not {headroom!r}.",
            hint="It is the fraction of a replica's sustainable rate to plan for, like 0.7.",
        )
    if isinstance(min_replicas, bool) or not isinstance(min_replicas, int) or min_replicas < 1:
        raise ConfigError(
            f"min_replicas must be a whole number of at least 1, not {min_replicas!r}.",
            hint="Use 2 or more to keep serving while a replica restarts.",
        )
    if not loaded.steps:
        raise ConfigError("The load-test result has no steps.", hint="Run the load test again.")
    usable = [s for s in loaded.steps if s.problem(slo) is None]
    if not usable:
        lowest = min(loaded.steps, key=lambda s: s.rate)
        raise ConfigError(
            f"The SLO of p99 ≤ {slo:g} ms cannot be met at any tested rate (at the lowest, "
            f"{lowest.rate:g}/s: {lowest.problem(slo)}).",
            hint="Make the model faster (ONNX export, quantization, a smaller model), give each "
            "replica more workers and cores, test lower rates, or loosen the SLO.",
        )
    best = max(usable, key=lambda s: s.achieved)
    sustainable = best.achieved
    replicas = max(min_replicas, math.ceil(target / (sustainable * headroom) - 1e-9))
    per_replica = target / replicas
    notes = []
    failing_below = [s for s in loaded.steps if s.rate < best.rate and s.problem(slo)]
    if failing_below:
        rates = ", ".join(f"{s.rate:g}/s" for s in failing_below)
        notes.append(
            f"Lower rates ({rates}) missed the SLO although {best.rate:g}/s met it: the "
            "measurement is noisy. Run longer steps before relying on this plan."
        )
    if best.rate >= max(s.rate for s in loaded.steps):
        notes.append(
            f"The highest tested rate ({best.rate:g}/s) met the SLO, so one replica may "
            "sustain more: test higher rates for a tighter plan."
        )
    return CapacityPlan(
        target_qps=target,
        slo_p99_ms=slo,
        headroom=float(headroom),
        min_replicas=min_replicas,
        replicas=replicas,
        sustainable_qps=sustainable,
        step=best,
        per_replica_qps=per_replica,
        utilisation=per_replica / sustainable,
        extrapolated=target > max(s.achieved for s in loaded.steps),
        model=loaded.model,
        workers=loaded.workers,
        cpus=loaded.cpus,
        notes=tuple(notes),
    )
