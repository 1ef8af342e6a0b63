"""Every state change appends its audit event in the change's own transaction, with its actor;
a failed change appends nothing; ``plinth audit list|verify|head`` over a real workspace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import text

import plinth
from plinth.catalog.audit import AuditRecord, events, verify
from plinth.cli.main import main
from plinth.cli.output import console
from plinth.errors import ConfigError, ContractError, ModelNotFoundError, SchemaMismatchError

USER = "ana"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[plinth.Workspace]:
    """An embedded workspace whose user is 'ana'."""
    workspace = plinth.Workspace(settings=plinth.Settings(home=tmp_path / "ws", user=USER))
    yield workspace
    workspace.close()


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print tables 200 columns wide, so no cell is cut."""
    monkeypatch.setattr(console, "_width", 200)


def chain(ws: plinth.Workspace, prefix: str = "") -> list[AuditRecord]:
    """The events (of actions starting with ``prefix``), oldest first."""
    found = events(ws, limit=None, newest_first=False)
    return [e for e in found if e.action.startswith(prefix)]


def pairs(ws: plinth.Workspace, prefix: str = "") -> list[tuple[str, str]]:
    """(action, resource) of the events, oldest first."""
    return [(e.action, e.resource) for e in chain(ws, prefix)]


def flights(rows: int = 3, start: int = 0) -> pa.Table:
    return pa.table({"id": list(range(start, start + rows)), "delay": [1.5] * rows})


def _model_data(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pd.DataFrame({"x": x, "delayed": (x + rng.normal(size=rows) > 0).astype(int)})


def _register(ws: plinth.Workspace, name: str = "clf") -> int:
    from sklearn.linear_model import LogisticRegression

    data = _model_data()
    model = LogisticRegression().fit(data[["x"]], data["delayed"])
    return ws.models.register(model, name, example=data[["x"]].head(3)).version


# -- the lake ------------------------------------------------------------------------------


def test_every_table_version_is_an_event_and_a_failed_ingest_is_none(ws, tmp_path):
    ws.lake.ingest(flights(), table="flights")
    ws.lake.ingest(flights(2, start=10), table="flights", mode="overwrite")
    ws.lake.ingest(flights(2, start=10), table="flights", mode="upsert", key="id")
    ws.lake.delete("flights", "id = 10")
    assert pairs(ws) == [("table.version", f"table:flights@{v}") for v in range(4)]
    found = chain(ws)
    assert {e.actor for e in found} == {USER}
    assert [(e.details["operation"], e.details["rows"]) for e in found] == [
        ("append", 3), ("overwrite", 2), ("upsert", 2), ("delete", 0),
    ]  # fmt: skip
    infos = ws.lake.history("flights")
    assert [e.details["ingest_id"] for e in found] == [i.ingest_id for i in infos]
    assert found[0].details["source"] == {"kind": "memory", "type": "pyarrow.Table", "rows": 3}
    assert found[3].details["source"] == {"kind": "delete", "predicate": "id = 10"}

    with pytest.raises(SchemaMismatchError):
        ws.lake.ingest(flights().append_column("extra", pa.array([1, 2, 3])), table="flights")
    assert len(chain(ws)) == 4

    csv = tmp_path / "more.csv"
    csv.write_text("id,delay\n7,2.5\n")
    ws.lake.ingest(str(csv), table="flights")
    source = chain(ws)[-1].details["source"]
    assert source["kind"] == "files" and source["files"] == 1 and "paths" not in source
    assert verify(ws).ok


def test_the_source_summary_keeps_no_password():
    from plinth.lake.lake import source_summary

    summary = source_summary(
        {"kind": "sql", "url": "postgresql://bob:s3cret@db/x", "query": "SELECT 1", "sha256": "ab"}
    )
    assert summary == {"kind": "sql", "url": "postgresql://bob:***@db/x", "sha256": "ab"}


# -- quality -------------------------------------------------------------------------------

CONTRACT = "table: people\ncolumns:\n  score: {min: 0, max: 100}\n"


def test_contracts_and_quarantine_releases_and_purges(ws):
    ws.quality.apply(CONTRACT)
    ws.quality.apply(CONTRACT)  # unchanged: no new version, no event
    assert pairs(ws) == [("contract.apply", "contract:people@1")]

    ws.lake.ingest(pa.table({"id": [1, 2, 3], "score": [5.0, -1.0, 200.0]}), table="people")
    with pytest.raises(ContractError):
        ws.quality.apply("table: people\ncolumns:\n  nope: {min: 0}\n")
    ws.quality.apply(CONTRACT.replace("min: 0", "min: -5"))
    ws.quality.release("people")
    assert pairs(ws, "contract") == [
        ("contract.apply", "contract:people@1"), ("contract.apply", "contract:people@2"),
    ]  # fmt: skip
    release = chain(ws, "quarantine")
    assert [(e.action, e.resource, e.actor) for e in release] == [
        ("quarantine.release", "table:people", USER)
    ]
    assert release[0].details["released"] == 1 and release[0].details["still_failing"] == 1
    versions = [r for _, r in pairs(ws, "table.version")]
    assert "table:people@1" in versions and "table:people__quarantine@1" in versions

    assert ws.quality.purge("people") == 1
    purge = chain(ws, "quarantine")[-1]
    assert (purge.action, purge.resource, purge.details["rows"]) == (
        "quarantine.purge", "table:people", 1,
    )  # fmt: skip
    assert ws.quality.purge("people") == 0  # nothing to purge: no event
    assert len(chain(ws, "quarantine")) == 2 and verify(ws).ok


# -- features ------------------------------------------------------------------------------


def test_feature_definitions_and_training_sets(ws):
    from tests.registry.conftest import build_training

    training = build_training(ws)
    applied = pairs(ws, "features.")
    assert ("features.apply", "feature_view:scores@1") in applied
    assert ("features.apply", "feature_service:svc@1") in applied
    assert pairs(ws, "training_set.") == [("training_set.create", f"training_set:{training.id}")]
    created = chain(ws, "training_set.")[0]
    assert created.actor == USER and created.details["rows"] == training.table.num_rows

    before = len(applied)
    ws.features.apply(
        [
            plinth.FeatureView(
                "scores",
                source="scores",
                entities=[plinth.Entity("k")],
                timestamp="ts",
                features=["score"],
                ttl="2d",
            )
        ]
    )
    applied = chain(ws, "features.")
    assert len(applied) == before + 1  # only the changed view
    assert applied[-1].resource == "feature_view:scores@2"
    assert applied[-1].details["previous"] == 1
    assert verify(ws).ok


# -- tracking ------------------------------------------------------------------------------


def test_run_start_and_end_helpers_append_in_the_runs_transaction(ws):
    from plinth._core.clock import utcnow
    from plinth.catalog.models import Run
    from plinth.tracking.service import audit_run_end, audit_run_start

    with ws.catalog.session() as session:
        row = Run(
            id="run_audit",
            experiment="exp",
            status="running",
            launcher="local",
            started_at=utcnow(),
            created_by=USER,
        )
        session.add(row)
        audit_run_start(session, row)
    with ws.catalog.session() as session:
        row = session.get(Run, "run_audit")
        row.status, row.error = "failed", "ValueError: diverged"
        audit_run_end(session, row, "bob")
    with pytest.raises(RuntimeError), ws.catalog.session() as session:
        row = session.get(Run, "run_audit")
        row.status = "killed"
        audit_run_end(session, row)
        raise RuntimeError("the status change failed")
    found = chain(ws)
    assert [(e.action, e.resource, e.actor) for e in found] == [
        ("run.start", "run:run_audit", USER), ("run.end", "run:run_audit", "bob"),
    ]  # fmt: skip
    assert found[0].details == {"experiment": "exp", "launcher": "local", "parent": None}
    assert found[1].details == {"status": "failed", "error": "ValueError: diverged"}


def test_metric_points_append_no_events(ws):
    with ws.run("exp", capture=False) as run:
        for step in range(200):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    assert len(chain(ws)) <= 2  # at most the run's start and end


# -- registry --------------------------------------------------------------------------------


def test_versions_aliases_and_gate_decisions(ws):
    from plinth.registry.gates import gate

    assert [_register(ws), _register(ws)] == [1, 2]
    assert pairs(ws) == [("model.register", "model:clf:1"), ("model.register", "model:clf:2")]
    ws.models.set_alias("clf", "champion", 1)
    ws.models.set_alias("clf", "champion", 1)  # unchanged: no event
    ws.models.set_alias("clf", "champion", 2, reason="better")
    with pytest.raises(ModelNotFoundError):
        ws.models.set_alias("clf", "champion", 9)
    ws.models.remove_alias("clf", "champion")
    moves = chain(ws, "model.alias")
    assert {(e.resource, e.actor) for e in moves} == {("model:clf", USER)}
    assert [e.details for e in moves] == [
        {"alias": "champion", "version": 1, "previous": None, "reason": None},
        {"alias": "champion", "version": 2, "previous": 1, "reason": "better"},
        {"alias": "champion", "version": None, "previous": 2, "reason": None},
    ]

    ws.models.set_alias("clf", "champion", 1)
    result = gate(ws, "clf:2", _model_data(seed=1), "delayed", {"rules": ["auc >= 0.5"]})
    decision = chain(ws, "gate.")[0]
    assert (decision.resource, decision.actor) == ("model:clf:2", USER)
    assert decision.details["passed"] is True and decision.details["champion"] == 1
    assert decision.details["decision_id"] == result.decision_id
    promoted = chain(ws)[-1]
    assert (promoted.action, promoted.details["version"]) == ("model.alias", 2)
    assert verify(ws).ok


# -- serving ---------------------------------------------------------------------------------


def test_deployment_applies_and_rollbacks(ws):
    from plinth.serving.deployments import DeploymentSpec

    _register(ws)
    _register(ws)
    ws.deployments.apply(DeploymentSpec.of("clf:1"))
    ws.deployments.apply(DeploymentSpec.of("clf:1", canary="clf:2", canary_weight=20))
    with pytest.raises(ConfigError):
        ws.deployments.apply(DeploymentSpec.of("clf:1"), target="mainframe")
    ws.deployments.rollback("clf")
    found = chain(ws, "deployment.")
    assert [(e.action, e.resource, e.actor) for e in found] == [
        ("deployment.apply", "deployment:clf@1", USER),
        ("deployment.apply", "deployment:clf@2", USER),
        ("deployment.rollback", "deployment:clf@3", USER),
    ]
    assert found[1].details["spec"]["routes"][1] == {"uri": "clf:2", "weight": 20.0}
    assert found[2].details["reason"] == "rollback to revision 1"


# -- pipelines and monitoring ----------------------------------------------------------------


def test_pipeline_runs_start_and_end(ws):
    from plinth.pipelines import run
    from tests.pipelines import flows

    result = run(flows.simple, {"n": 3}, ws=ws)
    found = chain(ws, "pipeline.")
    assert [(e.action, e.resource, e.actor) for e in found] == [
        ("pipeline.start", f"pipeline_run:{result.run_id}", USER),
        ("pipeline.end", f"pipeline_run:{result.run_id}", USER),
    ]
    assert found[0].details["pipeline"] == "simple"
    assert found[1].details["status"] == "succeeded"


def test_alerts_fire_and_resolve(ws):
    from plinth.monitoring.alerts import AlertManager
    from plinth.monitoring.rules import Rule

    manager = AlertManager(ws)
    rule = Rule(name="slow", model="clf", when="latency.p99 > 250")
    assert manager.evaluate(rule, "clf", {"latency.p99": 10}).transition == "ok"
    fired = manager.evaluate(rule, "clf", {"latency.p99": 300})
    assert manager.evaluate(rule, "clf", {"latency.p99": 400}).transition == "firing"
    manager.evaluate(rule, "clf", {"latency.p99": 20})
    found = chain(ws)
    assert [(e.action, e.resource, e.actor) for e in found] == [
        ("alert.fire", f"alert:{fired.alert_id}", USER),
        ("alert.resolve", f"alert:{fired.alert_id}", USER),
    ]
    assert found[0].details == {"rule": "slow", "model": "clf", "severity": "warning",
                                "value": 300.0}  # fmt: skip


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def home(ws) -> str:
    """The workspace with three versions of 'flights' and one of 'planes' (four events)."""
    for rows in (3, 2, 1):
        ws.lake.ingest(flights(rows), table="flights")
    ws.lake.ingest(pa.table({"tail": ["N1"]}), table="planes")
    return str(ws.home)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_audit_list_filters_by_resource_action_actor_and_limit(home, capsys):
    code, out, _ = cli(capsys, "audit", "list", "--resource", "table:flights", "--home", home)
    assert code == 0
    for text_ in ("table.version", "table:flights@0", "table:flights@2", USER, '"operation"'):
        assert text_ in out, text_
    assert "planes" not in out
    code, out, _ = cli(capsys, "audit", "list", "--home", home, "--json", "--limit", "2")
    data = json.loads(out)
    assert [e["resource"] for e in data] == ["table:planes@0", "table:flights@2"]
    assert data[0]["seq"] == 4 and len(data[0]["hash"]) == 64 and data[0]["actor"] == USER
    _, out, _ = cli(capsys, "audit", "list", "--home", home, "--actor", "bob")
    assert "No audit events match." in out
    _, out, _ = cli(capsys, "audit", "list", "--home", home, "--action", "model.alias", "--json")
    assert json.loads(out) == []


def test_audit_verify_names_the_edited_event(ws, home, capsys):
    code, out, _ = cli(capsys, "audit", "verify", "--home", home)
    newest = events(ws, limit=1)[0]
    assert code == 0 and out.strip() == f"4 events, chain intact, head {newest.hash}"

    with ws.catalog.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    code, out, err = cli(capsys, "audit", "verify", "--home", home)
    assert code == 1 and "Traceback" not in err
    assert "event 2" in err and "actor" in err
    code, out, _ = cli(capsys, "audit", "verify", "--home", home, "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["first_bad"] == 2


def test_a_deleted_newest_event_is_caught_by_the_anchor(ws, home, capsys, tmp_path):
    anchor = tmp_path / "anchor.json"
    code, out, _ = cli(capsys, "audit", "head", "--output", str(anchor), "--home", home)
    exported = json.loads(anchor.read_text())
    assert code == 0 and exported["seq"] == 4 and exported["hash"] in out
    code, out, _ = cli(capsys, "audit", "head", "--home", home)
    assert json.loads(out) == exported
    code, out, _ = cli(capsys, "audit", "verify", "--anchor", str(anchor), "--home", home)
    assert code == 0 and "matches the anchor at event 4" in out

    with ws.catalog.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    code, out, _ = cli(capsys, "audit", "verify", "--home", home)
    assert code == 0 and out.startswith("3 events, chain intact")  # consistent on its own
    code, _, err = cli(capsys, "audit", "verify", "--anchor", str(anchor), "--home", home)
    assert code == 1 and "event 4 is gone" in err

    code, _, err = cli(capsys, "audit", "verify", "--anchor", str(tmp_path / "no.json"),
                       "--home", home)  # fmt: skip
    assert code == 1 and "does not exist" in err and "audit head --output" in err
