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

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.errors import ConfigError

__all__ = ["CapacityPlan", "LoadStep", "LoadTestResult", "capacity"]

#: A step is saturated when it achieved less than this fraction of the rate it offered.
SATURATION = 0.95
_FORMAT_HINT = (
    "Give the JSON a load test writes: url, model, workers, cpus, started_at and steps, each "
    "step with rate, achieved, duration_s, requests, errors, p50_ms, p95_ms, p99_ms, max_ms."
)


def _number(data: Mapping[str, Any], key: str, where: str, *, whole: bool = False) -> Any:
    if key not in data:
        raise ConfigError(f"The load-test result has no '{key}' in {where}.", hint=_FORMAT_HINT)
    value = data[key]
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= 0:
        kind = "whole number" if whole else "number"
        raise ConfigError(
            f"'{key}' in {where} of the load-test result must be a non-negative {kind}, "
            f"not {value!r}.",
            hint=_FORMAT_HINT,
        )
    return int(value) if whole else float(value)


@dataclass(frozen=True)
class LoadStep:
    """One step of a load test: the offered rate, what was achieved, errors and latencies.

    Example:
        >>> step = LoadStep(100.0, 99.8, 10.0, 998, 0, 1.1, 1.9, 2.5, 7.0)
        >>> step.problem(slo_p99_ms=2.0)
        'p99 2.5 ms over the SLO'
    """

    rate: float
    achieved: float
    duration_s: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "a step") -> LoadStep:
        """Read a step from its JSON form; raise :class:`ConfigError` naming a bad field.

        Example:
            >>> LoadStep.from_dict({"rate": 50, "achieved": 50, "duration_s": 10,
            ...     "requests": 500, "errors": 0, "p50_ms": 1, "p95_ms": 2, "p99_ms": 3,
            ...     "max_ms": 4}).p99_ms
            3.0
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where} of the load-test result is not an object.", hint=_FORMAT_HINT
            )
        whole = {"requests", "errors"}
        values = {
            name: _number(data, name, where, whole=name in whole)
            for name in cls.__dataclass_fields__
            if name != "statuses"
        }
        statuses = data.get("statuses") or {}
        if not isinstance(statuses, Mapping):
            raise ConfigError(f"'statuses' in {where} must be an object.", hint=_FORMAT_HINT)
        return cls(**values, statuses={str(k): int(v) for k, v in statuses.items()})

    def to_dict(self) -> dict[str, Any]:
        """The step's JSON form (``statuses`` only when recorded)."""
        data: dict[str, Any] = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name != "statuses"
        }
        if self.statuses:
            data["statuses"] = dict(self.statuses)
        return data

    @property
    def saturated(self) -> bool:
        """Whether the server fell behind: it achieved under 95 % of the offered rate."""
        return self.achieved < SATURATION * self.rate

    def problem(self, slo_p99_ms: float) -> str | None:
        """Why this step cannot count as sustainable at the SLO, or ``None`` if it can."""
        problems = []
        if self.errors:
            problems.append(f"{self.errors} errors")
        if self.saturated:
            problems.append(f"saturated ({self.achieved:.6g} of {self.rate:.6g}/s)")
        if self.p99_ms > slo_p99_ms:
            problems.append(f"p99 {self.p99_ms:.6g} ms over the SLO")
        return ", ".join(problems) or None


@dataclass(frozen=True)
class LoadTestResult:
    """A load test of one server: where it ran, on how many workers and cores, and its steps.

    Example:
        >>> r = LoadTestResult("u", "delay", 1, 2, "2026-11-27T07:00:00+00:00", [])
        >>> LoadTestResult.from_dict(r.to_dict()) == r
        True
    """

    url: str
    model: str | None
    workers: int
    cpus: int
    started_at: str
    steps: list[LoadStep]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadTestResult:
        """Read a result from its JSON form; raise :class:`ConfigError` naming a bad field."""
        if not isinstance(data, Mapping):
            raise ConfigError("The load-test result is not a JSON object.", hint=_FORMAT_HINT)
        for key in ("url", "started_at"):
            if not isinstance(data.get(key), str):
                raise ConfigError(f"The load-test result has no '{key}' text.", hint=_FORMAT_HINT)
        model = data.get("model")
        if model is not None and not isinstance(model, str):
            raise ConfigError("'model' in the load-test result must be text.", hint=_FORMAT_HINT)
        steps = data.get("steps")
        if not isinstance(steps, list):
            raise ConfigError("The load-test result has no 'steps' list.", hint=_FORMAT_HINT)
        return cls(
            url=data["url"],
            model=model,
            workers=_number(data, "workers", "the result", whole=True),
            cpus=_number(data, "cpus", "the result", whole=True),
            started_at=data["started_at"],
            steps=[LoadStep.from_dict(s, f"step {i + 1}") for i, s in enumerate(steps)],
        )

    def to_dict(self) -> dict[str, Any]:
        """The result's JSON form."""
        return {
            "url": self.url,
            "model": self.model,
            "workers": self.workers,
            "cpus": self.cpus,
            "started_at": self.started_at,
            "steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LoadTestResult:
        """Read a load-test result JSON file.

        Example:
            >>> # LoadTestResult.load("loadtest.json").steps[0].p99_ms
        """
        target = Path(path)
        try:
            text = target.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the load-test result '{target}': {exc.strerror or exc}.",
                hint="Check the path; a load test writes this file with its results.",
            ) from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"The load-test result '{target}' is not valid JSON: {exc}.", hint=_FORMAT_HINT
            ) from None
        return cls.from_dict(data)


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
