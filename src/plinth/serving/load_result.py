"""Load-test results: the steps a load test measured, as JSON (what ``plinth loadtest``
writes and ``plinth capacity`` reads).

Example:
    >>> step = LoadStep(100.0, 99.8, 10.0, 998, 0, 1.1, 1.9, 2.5, 7.0)
    >>> step.saturated
    False
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.errors import ConfigError

_EXTRA = ("statuses", "latencies_ms")
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
    #: Every answered request's latency (kept in memory by the load generator, not in JSON).
    latencies_ms: Any = field(default=None, repr=False, compare=False)

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
            if name not in _EXTRA
        }
        statuses = data.get("statuses") or {}
        if not isinstance(statuses, Mapping):
            raise ConfigError(f"'statuses' in {where} must be an object.", hint=_FORMAT_HINT)
        return cls(**values, statuses={str(k): int(v) for k, v in statuses.items()})

    def to_dict(self) -> dict[str, Any]:
        """The step's JSON form (``statuses`` only when recorded)."""
        data: dict[str, Any] = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name not in _EXTRA
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

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result's JSON to ``path`` and return it."""
        target = Path(path)
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LoadTestResult:
        """Read a load-test result JSON file.

        Example:
            >>> # LoadTestResult.load("loadtest.json").steps[0].p99_ms
        """
        from plinth._core.files import read_text

        target = Path(path)
        text = read_text(
            target,
            what="the load-test result",
            hint="Check the path; a load test writes this file with its results.",
        )
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"The load-test result '{target}' is not valid JSON: {exc}.", hint=_FORMAT_HINT
            ) from None
        return cls.from_dict(data)
