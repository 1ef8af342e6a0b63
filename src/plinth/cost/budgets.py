"""Budgets: month-to-date spend per project against its monthly budget, alerts at 80% and 100%.

Budgets are set per project in USD a month (``[budgets]`` in ``plinth.toml``, or
``PLINTH_BUDGETS``). Everything a workspace records counts for its project (the ``project``
setting): the month-to-date spend is :func:`~plinth.cost.accounting.spend` from midnight UTC
on the first of the month until now. A budget for another project is listed but measured only
in that project's workspaces.

Alerts go through the monitoring alert machinery (:class:`~plinth.monitoring.alerts.
AlertManager`), so they share its catalog tables, deduplication and history and show in
``plinth monitor alerts``: two rules per project, ``budget-<project>-80`` (warning,
``cost.month_share >= 0.8``) and ``budget-<project>-100`` (critical, ``cost.month_share >=
1``), evaluated for the "model" ``project:<project>``. Each fires once when the share crosses
its threshold, stays firing (no new event) while it holds, and resolves when a new month
starts or the budget is raised.

Example:
    >>> # [(b.project, b.share, b.transitions) for b in evaluate_budgets(ws)]
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plinth._core.clock import as_utc, utcnow
from plinth.cost.accounting import Spend, cost_report
from plinth.cost.prices import PriceTable
from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth.monitoring.rules import Rule
    from plinth.workspace import Workspace

__all__ = [
    "THRESHOLDS",
    "BudgetStatus",
    "budget_rules",
    "budget_status",
    "evaluate_budgets",
    "month_start",
    "month_to_date",
]

#: Shares of a budget at which an alert fires, with the alert's severity.
THRESHOLDS = ((0.8, "warning"), (1.0, "critical"))


def month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC on the first day of ``now``'s month.

    Example:
        >>> from datetime import UTC
        >>> month_start(datetime(2026, 11, 27, 10, tzinfo=UTC)).isoformat()
        '2026-11-01T00:00:00+00:00'
    """
    now = as_utc(now) if now else utcnow()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_to_date(
    ws: Workspace, now: datetime | None = None, *, prices: PriceTable | None = None
) -> Spend:
    """The workspace's spend from the first of ``now``'s month (UTC) until ``now``.

    Example:
        >>> # month_to_date(ws).total_usd
    """
    now = as_utc(now) if now else utcnow()
    return cost_report(ws, "run", month_start(now), now=now, prices=prices).spend


def _slug(project: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", project.lower()).strip("-_") or "project"
    return slug[:100]


def budget_rules(project: str) -> list[Rule]:
    """The two alert rules of a project's budget: 80% (warning) and 100% (critical).

    Example:
        >>> [r.name for r in budget_rules("Fraud Team")]
        ['budget-fraud-team-80', 'budget-fraud-team-100']
    """
    from plinth.monitoring.rules import Rule

    slug = _slug(project)
    return [
        Rule(
            name=f"budget-{slug}-{round(share * 100)}",
            model=f"budget-{slug}",
            when=f"cost.month_share >= {share:g}",
            severity=severity,  # type: ignore[arg-type]
            description=f"Month-to-date spend of project {project} reached "
            f"{share:.0%} of its budget.",
        )
        for share, severity in THRESHOLDS
    ]


@dataclass(frozen=True)
class BudgetStatus:
    """A project's budget this month: spend, share of the budget, and what its alerts did.

    ``spent_usd`` is ``None`` for a project other than the workspace's (not measured here);
    ``transitions`` maps each rule evaluated to what happened (``fired``, ``firing``,
    ``resolved``, ``ok``) and ``alert_ids`` to the open or resolved alert's id.
    """

    project: str
    month: str
    budget_usd: float
    spent_usd: float | None
    share: float | None
    transitions: dict[str, str] = field(default_factory=dict)
    alert_ids: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON-ready data."""
        return asdict(self)


def _budgets(ws: Workspace) -> dict[str, float]:
    budgets = dict(ws.settings.budgets)
    for project, usd in budgets.items():
        if not math.isfinite(usd) or usd <= 0:
            raise ConfigError(
                f"The budget of project '{project}' must be more than 0 USD, not {usd!r}.",
                hint="Set a monthly amount in USD, e.g. [budgets] then default = 500.",
            )
    return budgets


def budget_status(
    ws: Workspace, now: datetime | None = None, *, prices: PriceTable | None = None
) -> list[BudgetStatus]:
    """Every budget's month-to-date spend and share, without touching alerts.

    Example:
        >>> # [(b.project, b.spent_usd, b.budget_usd) for b in budget_status(ws)]
    """
    now = as_utc(now) if now else utcnow()
    budgets = _budgets(ws)
    own = ws.settings.project
    spent = month_to_date(ws, now, prices=prices).total_usd if own in budgets else None
    found = []
    for project, usd in sorted(budgets.items()):
        mine = spent if project == own else None
        share = mine / usd if mine is not None else None
        found.append(BudgetStatus(project, now.strftime("%Y-%m"), usd, mine, share))
    return found


def evaluate_budgets(
    ws: Workspace,
    now: datetime | None = None,
    *,
    prices: PriceTable | None = None,
    actor: str | None = None,
) -> list[BudgetStatus]:
    """Evaluate the workspace project's budget rules: fire at 80% and 100%, resolve below.
    Alerts that fire or resolve are audited as ``actor`` (the workspace's user by default).

    Example:
        >>> # evaluate_budgets(ws)[0].transitions
        >>> # {'budget-default-80': 'fired', 'budget-default-100': 'ok'}
    """
    from plinth.monitoring.alerts import AlertManager

    now = as_utc(now) if now else utcnow()
    manager = AlertManager(ws, actor=actor)
    found = []
    for status in budget_status(ws, now, prices=prices):
        if status.share is None:
            found.append(status)
            continue
        facts = {
            "cost.month_share": status.share,
            "cost.month_usd": status.spent_usd or 0.0,
            "cost.budget_usd": status.budget_usd,
        }
        for rule in budget_rules(status.project):
            outcome = manager.evaluate(rule, f"project:{status.project}", facts, now=now)
            status.transitions[rule.name] = outcome.transition
            if outcome.alert_id is not None:
                status.alert_ids[rule.name] = outcome.alert_id
        found.append(status)
    return found
