"""Budgets: month-to-date spend per project, alerts at 80% and 100%, deduplicated, with history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plinth._core.clock import utcnow
from plinth._core.settings import Settings
from plinth.cli.main import main
from plinth.cost.budgets import (
    budget_rules,
    budget_status,
    evaluate_budgets,
    month_start,
    month_to_date,
)
from plinth.errors import ConfigError
from plinth.monitoring.alerts import AlertManager
from plinth.tracking.resources import Usage
from plinth.tracking.run import start_run
from plinth.workspace import Workspace

HOUR = 3600.0
# One USD per CPU-hour, everything else free: a run's cost is its CPU hours.
PRICES = {"cpu_core_hour": 1.0, "memory_gb_hour": 0.0, "storage_gb_month": 0.0}


def spend_cpu_hours(ws: Workspace, hours: float) -> None:
    run = start_run(ws, "exp", capture=False)
    run.end("finished", usage=Usage("host", HOUR, hours * HOUR, 0, 0, 0.0, 0))


def make_ws(home: Path, budgets: dict[str, float], project: str = "default") -> Workspace:
    settings = Settings(home=home, user="tester", project=project, prices=PRICES, budgets=budgets)
    workspace = Workspace(settings=settings)
    workspace.init()
    return workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = make_ws(tmp_path / "ws", {"default": 10.0, "other": 99.0})
    yield workspace
    workspace.close()


def test_month_start_is_midnight_utc_on_the_first():
    assert month_start(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(
        2026, 12, 1, tzinfo=UTC
    )


def test_month_to_date_spend_counts_this_month_only(ws: Workspace):
    spend_cpu_hours(ws, 3)
    now = utcnow()
    assert month_to_date(ws, now).total_usd == pytest.approx(3.0)
    following = month_start(month_start(now) + timedelta(days=32))
    assert month_to_date(ws, following + timedelta(hours=1)).total_usd == 0


def test_budget_status_measures_only_the_workspace_project(ws: Workspace):
    spend_cpu_hours(ws, 5)
    statuses = {s.project: s for s in budget_status(ws)}
    assert statuses["default"].spent_usd == pytest.approx(5.0)
    assert statuses["default"].share == pytest.approx(0.5)
    assert statuses["other"].spent_usd is None and statuses["other"].share is None


def test_alerts_fire_once_at_80_and_once_at_100_percent_then_resolve(ws: Workspace):
    eighty, hundred = (r.name for r in budget_rules("default"))
    now = utcnow()
    [mine, other] = evaluate_budgets(ws)
    assert mine.transitions == {eighty: "ok", hundred: "ok"} and other.transitions == {}

    spend_cpu_hours(ws, 8.5)
    [mine, _] = evaluate_budgets(ws)
    assert mine.share == pytest.approx(0.85)
    assert mine.transitions == {eighty: "fired", hundred: "ok"}
    [mine, _] = evaluate_budgets(ws)
    assert mine.transitions == {eighty: "firing", hundred: "ok"}  # deduplicated

    spend_cpu_hours(ws, 2)
    [mine, _] = evaluate_budgets(ws)
    assert mine.transitions == {eighty: "firing", hundred: "fired"}
    [mine, _] = evaluate_budgets(ws)
    assert mine.transitions == {eighty: "firing", hundred: "firing"}

    manager = AlertManager(ws)
    alerts = manager.alerts(model="project:default")
    assert sorted((a.rule, a.severity, a.state) for a in alerts) == [
        (hundred, "critical", "firing"),
        (eighty, "warning", "firing"),
    ]
    assert [e.kind for a in alerts for e in manager.history(a.id)] == ["fired", "fired"]

    # a new month starts from zero: both alerts resolve, each with one more event
    following = month_start(month_start(now) + timedelta(days=32)) + timedelta(hours=1)
    [mine, _] = evaluate_budgets(ws, following)
    assert mine.spent_usd == 0
    assert mine.transitions == {eighty: "resolved", hundred: "resolved"}
    for alert in manager.alerts(model="project:default"):
        assert alert.state == "resolved"
        assert [e.kind for e in manager.history(alert.id)] == ["fired", "resolved"]


def test_budget_rule_names_are_safe_for_any_project_name():
    rules = budget_rules("Team / Fraud #1")
    assert [r.name for r in rules] == ["budget-team-fraud-1-80", "budget-team-fraud-1-100"]
    assert [r.severity for r in rules] == ["warning", "critical"]
    assert rules[0].condition.evaluate({"cost.month_share": 0.8}).holds
    assert not rules[1].condition.evaluate({"cost.month_share": 0.99}).holds


@pytest.mark.parametrize("amount", [0.0, -5.0, float("nan")])
def test_a_budget_must_be_positive(tmp_path: Path, amount: float):
    workspace = make_ws(tmp_path / "ws", {"default": amount})
    with pytest.raises(ConfigError, match="budget of project 'default'"):
        budget_status(workspace)
    workspace.close()


def test_cli_budget_fires_and_reports(tmp_path: Path, monkeypatch, capsys):
    workspace = make_ws(tmp_path / "ws", {})
    spend_cpu_hours(workspace, 1)
    workspace.close()
    home = str(tmp_path / "ws")
    assert main(["cost", "budget", "--home", home]) == 0
    assert "No budgets are set" in capsys.readouterr().out
    monkeypatch.setenv("PLINTH_PRICES", json.dumps(PRICES))
    monkeypatch.setenv("PLINTH_BUDGETS", json.dumps({"default": 1.1}))
    assert main(["cost", "budget", "--home", home]) == 0
    out = capsys.readouterr().out
    assert "80% fired" in out and "100% ok" in out and "91%" in out
    assert main(["cost", "budget", "--home", home, "--json"]) == 0
    [status] = json.loads(capsys.readouterr().out)
    assert status["transitions"] == {"budget-default-80": "firing", "budget-default-100": "ok"}
    assert status["spent_usd"] == pytest.approx(1.0)
