"""plinth monitor run/report/quality/performance/alerts on a served model's log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from plinth.cli.main import main
from plinth.monitoring.alerts import AlertManager
from plinth.monitoring.rules import parse_rules
from plinth.monitoring.runner import run_every, run_once
from plinth.monitoring.summary import histogram, monitoring_summary

T0 = datetime(2024, 3, 1, tzinfo=UTC)

RULES = """
models:
  - uri: risk@champion
    window: 1d
    reference: risk_reference
    outcomes: {table: risk_outcomes, label: bad, keys: [request_id]}
    slices: [region]
rules:
  - name: x-moved
    model: risk@champion
    when: drift.x.wasserstein > 1.0
    actions:
      - log
      - retrain: {pipeline: "tests.monitoring.test_runner:retrain"}
  - name: slow
    model: risk@champion
    when: latency.p99_ms > 50
  - name: bad-auc
    model: risk@champion
    when: performance.auc < 0.6
"""


def retrain() -> dict:
    """A stand-in retraining pipeline: a real pipeline run with one step."""
    from plinth.pipelines import pipeline, step

    @step
    def fit() -> int:
        return 1

    @pipeline
    def flow() -> int:
        return fit()

    return flow


def _reference(ws) -> None:
    rng = np.random.default_rng(8)
    ws.lake.ingest(
        pa.table({"x": rng.normal(size=5000), "scores__score": rng.choice([0.1, 0.5], 5000)}),
        table="risk_reference",
    )


def _traffic(ws, day: int, shift: float, seed: int, good: bool = True) -> None:
    """One day of logged traffic and its outcomes (labels follow x when ``good``)."""
    rng = np.random.default_rng(seed)
    n = 400
    x = rng.normal(size=n) + shift
    ids = [f"d{day}-{i}" for i in range(n)]
    start = T0 + timedelta(days=day)
    ws.lake.ingest(
        pa.table(
            {
                "request_id": ids,
                "event_time": pa.array(
                    [start + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86400, n))],
                    pa.timestamp("us", tz="UTC"),
                ),
                "model_version": np.ones(n, np.int64),
                "route": ["primary"] * n,
                "latency_ms": rng.gamma(2.0, 1.0, n),
                "region": rng.choice(["north", "south"], n),
                "x": x,
                "scores__score": rng.choice([0.1, 0.5], n),
                "prediction": 1 / (1 + np.exp(-(x - shift))),
            }
        ),
        table="predictions__risk",
        mode="append",
    )
    truth = (x - shift + rng.normal(scale=0.5, size=n)) > 0 if good else rng.random(n) > 0.5
    ws.lake.ingest(
        pa.table({"request_id": ids, "bad": truth}), table="risk_outcomes", mode="append"
    )


def test_alert_fires_once_retrains_and_resolves(ws):
    _reference(ws)
    rules = parse_rules(RULES)
    _traffic(ws, 0, shift=0.0, seed=1)
    first = run_once(ws, rules)
    assert [r.outcome.transition for r in first.results] == ["ok", "ok", "ok"]
    observation = first.observations[("risk@champion", "1d")]
    facts = observation.facts
    assert facts["traffic.rows"] == 400 and facts["drift.x.drifted"] == 0
    assert 1 < facts["latency.p50_ms"] < 3 and facts["performance.auc"] > 0.8
    assert facts["quality.x.null_share"] == 0 and "freshness.log_age_s" in facts

    _traffic(ws, 1, shift=2.5, seed=2)
    second = run_once(ws, rules)
    moved = next(r for r in second.results if r.rule == "x-moved")
    assert moved.outcome.transition == "fired"
    assert second.observations[("risk@champion", "1d")].rows_added == 400
    retrain_run = next(a for a in moved.outcome.actions if a.action == "retrain")
    assert retrain_run.status == "ok" and retrain_run.pipeline_run_id
    assert ws.pipelines.get(retrain_run.pipeline_run_id).status == "succeeded"

    _traffic(ws, 2, shift=2.5, seed=3, good=False)
    third = run_once(ws, rules)
    by_rule = {r.rule: r.outcome.transition for r in third.results}
    assert by_rule == {"x-moved": "firing", "slow": "ok", "bad-auc": "fired"}

    _traffic(ws, 3, shift=0.0, seed=4)
    fourth = run_once(ws, rules)
    by_rule = {r.rule: r.outcome.transition for r in fourth.results}
    assert by_rule == {"x-moved": "resolved", "slow": "ok", "bad-auc": "resolved"}

    manager = AlertManager(ws)
    moved_alerts = manager.alerts(rule="x-moved")
    assert len(moved_alerts) == 1 and moved_alerts[0].state == "resolved"
    kinds = [e.kind for e in manager.history(moved_alerts[0].id)]
    assert kinds == ["fired", "action", "action", "resolved"]
    linked = [e.pipeline_run_id for e in manager.history(moved_alerts[0].id) if e.pipeline_run_id]
    assert linked == [retrain_run.pipeline_run_id]

    summary = monitoring_summary(ws, rules.target("risk@champion"))
    assert [round(d["rows"]) for d in summary["drift"]] == [400] * 4
    assert {a["rule"] for a in summary["alerts"]} == {"x-moved", "bad-auc"}
    assert summary["performance"][-1]["labelled"] == 400
    assert "x" in summary["histograms"] and "prediction" in summary["histograms"]
    json.dumps(summary)


def test_run_every_repeats_and_models_without_traffic_are_skipped(ws):
    _reference(ws)
    rules = parse_rules(RULES)
    seen = []
    assert run_every(ws, rules, 0.01, passes=2, on_pass=seen.append) == 2
    assert len(seen) == 2 and "no prediction log" in seen[0].skipped["risk@champion"]
    assert seen[0].results == []


def test_histogram_labels_and_shares():
    from plinth.monitoring.drift import CategoricalReference, NumericReference

    ref = NumericReference.fit(np.arange(1000.0))
    h = histogram(ref, ref.counts(np.arange(500.0)))
    assert h["labels"][0].startswith("<") and h["labels"][-1].startswith(">=")
    assert sum(h["reference"]) == pytest.approx(1) and sum(h["current"]) == pytest.approx(1)
    cats = CategoricalReference.fit(list("aab"))
    h = histogram(cats, cats.counts(list("abz")))
    assert h["labels"] == ["a", "b", "other"] and h["current"][-1] == pytest.approx(1 / 3, abs=1e-4)


def test_monitor_commands(ws, tmp_path, capsys):
    _reference(ws)
    _traffic(ws, 0, shift=0.0, seed=1)
    _traffic(ws, 1, shift=2.5, seed=2)
    rules_file = tmp_path / "monitoring.yaml"
    rules_file.write_text(RULES)
    home = ["--home", str(ws.home)]
    assert main(["monitor", "run", "--rules", str(rules_file), *home]) == 0
    out = capsys.readouterr().out
    assert "rule x-moved on risk: fired" in out and "retrain ok" in out
    assert main(["monitor", "alerts", "--json", *home]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["rule"] for a in listed] == ["x-moved"]
    assert main(["monitor", "alert", str(listed[0]["id"]), *home]) == 0
    assert "retrain" in capsys.readouterr().out
    report = tmp_path / "report.html"
    args = ["monitor", "report", "risk@champion", "--html", str(report)]
    assert main([*args, "--rules", str(rules_file), *home]) == 0
    page = report.read_text()
    assert report.stat().st_size < 5_000_000 and "x-moved" in page and "<svg" in page
    quality = ["monitor", "quality", "risk@champion", "--rules", str(rules_file), "--json"]
    capsys.readouterr()
    assert main([*quality, *home]) == 0
    latest = json.loads(capsys.readouterr().out)
    assert latest["start"].startswith("2024-03-02")
    assert latest["columns"]["x"]["outside_reference_share"] > 0.05  # N(2.5, 1) above max
    perf = ["monitor", "performance", "risk@champion", "--outcomes", "risk_outcomes"]
    assert main([*perf, "--label", "bad", "--by", "region", "--json", *home]) == 0
    windows = json.loads(capsys.readouterr().out)
    assert [w["labelled"] for w in windows] == [400, 400]
    assert set(windows[0]["slices"]["region"]) == {"north", "south"}
    # Bad input: a clear message and exit 1, never a traceback.
    assert main(["monitor", "run", "--rules", str(tmp_path / "none.yaml"), *home]) == 1
    assert main(["monitor", "run", "--rules", str(rules_file), "--every", "soon", *home]) == 1
    assert main(["monitor", "alert", "999", *home]) == 1
    assert main([*perf, "--label", "nope", *home]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nope" in err and "999" in err
