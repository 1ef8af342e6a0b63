"""``plinth monitor run``: fold new traffic into each model's history and evaluate the alert rules.

One pass observes every monitored model once per window its rules use (the history update
reads only new log files), evaluates each rule on the facts of its model's latest window and
lets the :class:`~plinth.monitoring.alerts.AlertManager` fire, deduplicate or resolve alerts and
run their actions. ``every`` repeats the pass until stopped; a model that has no traffic yet is
reported and skipped, never fatal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from plinth.errors import PlinthError

if TYPE_CHECKING:
    from plinth.monitoring.alerts import AlertOutcome
    from plinth.monitoring.facts import Observation
    from plinth.monitoring.rules import RuleSet
    from plinth.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class RuleResult:
    """One rule evaluated for one model."""

    rule: str
    model: str
    outcome: AlertOutcome

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "rule": self.rule,
            "model": self.model,
            "transition": self.outcome.transition,
            "alert_id": self.outcome.alert_id,
            "value": self.outcome.verdict.value,
            "actions": [a.to_dict() for a in self.outcome.actions],
        }


@dataclass
class MonitorPass:
    """What one pass did: the observations per model and window, and every rule's outcome."""

    at: datetime
    observations: dict[tuple[str, str], Observation] = field(default_factory=dict)
    results: list[RuleResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def fired(self) -> list[RuleResult]:
        """The rules that started firing in this pass."""
        return [r for r in self.results if r.outcome.transition == "fired"]

    def resolved(self) -> list[RuleResult]:
        """The alerts that resolved in this pass."""
        return [r for r in self.results if r.outcome.transition == "resolved"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "at": self.at.isoformat(),
            "seconds": self.seconds,
            "models": [
                {
                    "uri": uri,
                    "window": window,
                    "rows_added": obs.rows_added,
                    "windows": len(obs.windows),
                    "facts": obs.facts,
                }
                for (uri, window), obs in self.observations.items()
            ],
            "results": [r.to_dict() for r in self.results],
            "skipped": self.skipped,
        }


def run_once(
    ws: Workspace,
    rules: RuleSet,
    *,
    now: datetime | None = None,
    manager: Any = None,
) -> MonitorPass:
    """Observe every monitored model and evaluate every rule once.

    Example:
        >>> # run_once(ws, load_rules("monitoring.yaml")).fired()
    """
    from plinth.monitoring.alerts import AlertManager
    from plinth.monitoring.facts import observe

    started = time.perf_counter()
    moment = now or datetime.now(UTC)
    alerts = manager or AlertManager(ws)
    result = MonitorPass(moment)
    for target in rules.targets():
        windows = {rule_window(r, target) for r in rules if _same_model(r.model, target.uri)} or {
            target.window
        }
        for window in sorted(windows):
            try:
                observation = observe(ws, target, window=window, now=moment)
            except PlinthError as exc:
                result.skipped[target.uri] = exc.message
                log.warning("monitoring %s skipped: %s", target.uri, exc.message)
                break
            result.observations[(target.uri, window)] = observation
    for rule in rules:
        observed = _observation_for(result, rule.model, rule_window(rule, rules.target(rule.model)))
        if observed is None:
            continue
        outcome = alerts.evaluate(rule, observed.profile.model, observed.facts, now=moment)
        result.results.append(RuleResult(rule.name, observed.profile.model, outcome))
    result.seconds = time.perf_counter() - started
    return result


def run_every(
    ws: Workspace,
    rules: RuleSet,
    every_s: float,
    *,
    stop: threading.Event | None = None,
    passes: int | None = None,
    on_pass: Callable[[MonitorPass], None] | None = None,
) -> int:
    """Run a pass every ``every_s`` seconds until ``stop`` is set (or ``passes`` are done).

    A failing pass is logged and the loop goes on. Returns the number of passes run.

    Example:
        >>> # run_every(ws, rules, 300, stop=threading.Event())
    """
    from plinth.monitoring.alerts import AlertManager

    stop = stop or threading.Event()
    manager = AlertManager(ws)
    done = 0
    while not stop.is_set() and (passes is None or done < passes):
        began = time.monotonic()
        try:
            result = run_once(ws, rules, manager=manager)
            if on_pass is not None:
                on_pass(result)
        except PlinthError as exc:
            log.error("monitoring pass failed: %s", exc.message)
        done += 1
        if passes is not None and done >= passes:
            break
        stop.wait(max(0.0, every_s - (time.monotonic() - began)))
    return done


def rule_window(rule: Any, target: Any) -> str:
    """The window a rule is evaluated on: its own, else its model's (``models[].window``).

    Example:
        >>> from plinth.monitoring.facts import Target
        >>> from plinth.monitoring.rules import Rule
        >>> rule_window(Rule(name="a", model="m", when="x > 1"), Target("m", window="30d"))
        '30d'
    """
    return str(rule.window) if "window" in rule.model_fields_set else str(target.window)


def _same_model(rule_uri: str, target_uri: str) -> bool:
    if rule_uri == target_uri:
        return True
    return rule_uri.split("@")[0].split(":")[0] == target_uri.split("@")[0].split(":")[0]


def _observation_for(result: MonitorPass, uri: str, window: str) -> Observation | None:
    for (target_uri, seen_window), observation in result.observations.items():
        if seen_window == window and _same_model(uri, target_uri):
            return observation
    return None
