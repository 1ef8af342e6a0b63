"""Monitor the served delay model while July-December is replayed, month by month.

After each replayed month the prediction log is folded into the monitoring history and the
rules of ``monitoring.yaml`` are evaluated; the previous month's outcomes (did the flight
arrive more than 15 minutes late?) arrive in the lake table ``flight_outcomes`` one month
late, as labels do, so the delay AUC of each window appears once its flights have landed. The
temperature rule fires with the summer, launches the flights pipeline (its gate still decides
any promotion) and resolves when autumn brings temperatures back to the training range.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from plinth.examples.flights.train import DELAY_MINUTES

if TYPE_CHECKING:
    from plinth.monitoring.rules import RuleSet
    from plinth.monitoring.runner import MonitorPass
    from plinth.workspace import Workspace

RULES_FILE = Path(__file__).with_name("monitoring.yaml")
OUTCOMES = "flight_outcomes"


def rules() -> RuleSet:
    """The example's monitoring rules.

    Example:
        >>> rules().names
        ['weather-drift', 'delay-auc']
    """
    from plinth.monitoring.rules import load_rules

    return load_rules(RULES_FILE)


def ingest_outcomes(ws: Workspace, month: datetime, hours: list[datetime]) -> int:
    """Append the outcomes of the flights served in ``month`` (the replayed ``hours``).

    Example:
        >>> # ingest_outcomes(ws, datetime(2013, 7, 1, tzinfo=UTC), replay_hours())
    """
    import duckdb

    chosen = [h for h in hours if (h.year, h.month) == (month.year, month.month)]
    if not chosen:
        return 0
    con = duckdb.connect()
    con.register("flights", ws.lake.scan("flights"))
    query = (
        "SELECT strftime(make_date(year, month, day), '%Y-%m-%d') || '-' || carrier || "
        "CAST(flight AS VARCHAR) || '-' || origin AS request_id, "
        f"arr_delay > {DELAY_MINUTES} AS delayed, arr_delay, time_hour AS scheduled_hour "
        "FROM flights WHERE tailnum IS NOT NULL AND arr_delay IS NOT NULL AND time_hour IN ("
        + ", ".join("?" for _ in chosen)
        + ")"
    )
    try:
        table = con.sql(query, params=chosen).to_arrow_table()
    finally:
        con.close()
    ws.lake.ingest(table, table=OUTCOMES, mode="append")
    return table.num_rows


@dataclass
class MonitoringTimeline:
    """What monitoring did month by month during the replay."""

    passes: list[tuple[datetime, MonitorPass]] = field(default_factory=list)
    outcomes: int = 0

    def transitions(self, rule: str) -> list[tuple[datetime, str]]:
        """(month, transition) for every month a rule fired or resolved."""
        return [
            (month, r.outcome.transition)
            for month, done in self.passes
            for r in done.results
            if r.rule == rule and r.outcome.transition in {"fired", "resolved"}
        ]


def monitor_month(
    ws: Workspace,
    ruleset: RuleSet,
    timeline: MonitoringTimeline,
    month: datetime,
    *,
    hours: list[datetime],
    logged: Callable[[], int],
    expected: int,
    timeout_s: float = 30.0,
) -> MonitorPass:
    """Wait until the month's answers are logged, deliver last month's outcomes, run a pass.

    Example:
        >>> # monitor_month(ws, rules(), MonitoringTimeline(), month, hours=..., ...)
    """
    from plinth.monitoring.runner import run_once

    deadline = time.monotonic() + timeout_s
    while logged() < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    previous = (month.replace(day=1) - timedelta(days=1)).replace(day=1)
    timeline.outcomes += ingest_outcomes(ws, previous, hours)
    done = run_once(ws, ruleset, now=datetime.now(UTC))
    timeline.passes.append((month, done))
    return done


def finish(
    ws: Workspace, ruleset: RuleSet, timeline: MonitoringTimeline, hours: list[datetime]
) -> MonitorPass:
    """After the replay: the last month's outcomes land, and a final pass sees them.

    Example:
        >>> # finish(ws, rules(), timeline, replay_hours())
    """
    from plinth.monitoring.runner import run_once

    last = timeline.passes[-1][0] if timeline.passes else hours[-1].replace(day=1)
    timeline.outcomes += ingest_outcomes(ws, last, hours)
    done = run_once(ws, ruleset, now=datetime.now(UTC))
    timeline.passes.append((last, done))
    return done
