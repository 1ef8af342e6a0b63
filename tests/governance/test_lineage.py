"""Lineage: a model version reaches its source file's hash; a table version reaches the models
made from it; depth limits, JSON, the HTML page and the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import plinth
from plinth.catalog.models import Alert, AlertEvent, GateDecision, MonitorProfile, PipelineRun
from plinth.cli.main import main
from plinth.errors import ConfigError, NotFoundError
from plinth.governance.lineage import LineageGraph, lineage, resolve
from plinth.governance.lineage_html import render_html

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _write_csv(path: Path, rows: int = 80) -> str:
    rng = np.random.default_rng(0)
    lines = ["k,ts,x,label"]
    for i in range(rows):
        x = float(rng.normal())
        ts = (T0 + timedelta(hours=i)).isoformat()
        lines.append(f"{i % 5},{ts},{x:.6f},{int(x + rng.normal(scale=0.5) > 0)}")
    path.write_text("\n".join(lines) + "\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A workspace: obs.csv ingested, a view and service, a training set, a run, model 'risk'
    (v1 champion) registered from it, and a deployment; returns its home and the CSV's hash."""
    from sklearn.linear_model import LogisticRegression

    from plinth.serving.deployments import DeploymentSpec

    root = tmp_path_factory.mktemp("lineage")
    digest = _write_csv(root / "obs.csv")
    with plinth.Workspace(settings=plinth.Settings(home=root / "ws", user="tester")) as ws:
        ws.lake.ingest(str(root / "obs.csv"), table="obs", timestamp="ts")
        scores = {"k": pa.array(range(5), pa.int64()), "score": [0.1, 0.2, 0.3, 0.4, 0.5]}
        scores["ts"] = pa.array([T0] * 5, pa.timestamp("us", tz="UTC"))
        ws.lake.ingest(pa.table(scores), table="scores")
        view = plinth.FeatureView(
            "scores",
            source="scores",
            entities=[plinth.Entity("k")],
            timestamp="ts",
            features=["score"],
        )
        ws.features.apply([view, plinth.FeatureService("svc", features=["scores"])])
        training = ws.features.historical("obs", "svc", timestamp="ts")
        frame = training.table.to_pandas()
        inputs = frame[["x", "scores__score"]].fillna(0.0)
        with ws.run("risk-model", params={"C": 1.0}, capture=False) as run:
            run.use(training)
            model = LogisticRegression().fit(inputs, frame["label"])
            run.log_model(model, "risk", features="svc", example=inputs.head(5))
        ws.models.set_alias("risk", "champion", 1)
        ws.deployments.apply(DeploymentSpec.of("risk@champion"))
    return root / "ws", digest


@pytest.fixture
def ws(built: tuple[Path, str], tmp_path: Path) -> Iterator[plinth.Workspace]:
    home = tmp_path / "ws"
    shutil.copytree(built[0], home)
    workspace = plinth.Workspace(settings=plinth.Settings(home=home, user="tester"))
    yield workspace
    workspace.close()


def test_a_model_version_reaches_its_source_file_hash(ws, built):
    graph = lineage(ws, "risk@champion")
    assert graph.root == "model_version:risk/1"
    files = graph.of_kind("file")
    assert [f.attributes["sha256"] for f in files] == [built[1]]
    assert files[0].label == "obs.csv" and files[0].attributes["path"].endswith("obs.csv")
    keys = set(graph.nodes)
    assert {
        "table_version:obs@0",
        "table_version:scores@0",
        "feature_view:scores@1",
        "feature_service:svc@1",
        "entity:k@1",
    } <= keys
    run = graph.of_kind("run")[0]
    assert run.attributes["params"] == {"C": "1.0"} and run.attributes["experiment"] == "risk-model"
    relations = {(e.source.split(":")[0], e.relation, e.target.split(":")[0]) for e in graph.edges}
    assert ("run", "produced", "model_version") in relations
    assert ("training_set", "trained", "model_version") in relations
    assert ("training_set", "input_of", "run") in relations
    assert ("file", "ingested_into", "table_version") in relations
    assert all(n.level <= 0 for n in graph.nodes.values())


def test_every_form_of_reference_resolves(ws, built):
    training_set = lineage(ws, "risk:1").of_kind("training_set")[0].id
    run_id = lineage(ws, "risk:1").of_kind("run")[0].id
    expected = {
        "risk@champion": "model_version:risk/1",
        "models:/risk/1": "model_version:risk/1",
        "model_version:risk/1": "model_version:risk/1",
        "risk": "model_version:risk/1",
        "obs@0": "table_version:obs@0",
        "table:obs": "table_version:obs@0",
        "table:obs@0": "table_version:obs@0",
        "feature_view:scores": "feature_view:scores@1",
        "feature_service:svc@1": "feature_service:svc@1",
        f"training_set:{training_set}": f"training_set:{training_set}",
        training_set: f"training_set:{training_set}",
        f"run:{run_id}": f"run:{run_id}",
        "deployment:risk": "deployment:risk",
        "alias:risk@champion": "alias:risk@champion",
        f"file:{built[1][:12]}": f"file:sha256:{built[1]}",
        built[1]: f"file:sha256:{built[1]}",
    }
    assert {ref: resolve(ws, ref) for ref in expected} == expected


@pytest.mark.parametrize(
    ("ref", "error"),
    [
        ("", ConfigError),
        ("ghost@champion", NotFoundError),
        ("obs@7", NotFoundError),
        ("alert:12", NotFoundError),
        ("alert:abc", NotFoundError),
        ("file:xyz", ConfigError),
        ("file:00000000", NotFoundError),
        ("pipeline_run:pr_NOPE", NotFoundError),
        ("nothing_here", NotFoundError),
    ],
)
def test_unknown_or_malformed_objects_raise_with_the_accepted_forms(ws, ref, error):
    with pytest.raises(error) as info:
        lineage(ws, ref)
    assert info.value.hint


def test_downstream_of_a_table_version_reaches_the_model_and_deployment(ws):
    graph = lineage(ws, "obs@0", "down")
    assert "model_version:risk/1" in graph.nodes
    assert {"alias:risk@champion", "deployment:risk"} <= set(graph.nodes)
    assert ("alias:risk@champion", "deployment:risk", "routes") in {
        (e.source, e.target, e.relation) for e in graph.edges
    }
    assert all(n.level >= 0 for n in graph.nodes.values())


def test_depth_limits_the_walk(ws):
    one = lineage(ws, "risk:1", depth=1)
    assert {n.level for n in one.nodes.values()} == {0, -1}
    assert "run" in {n.kind for n in one.nodes.values()}
    assert not one.of_kind("file")
    assert set(lineage(ws, "risk:1", depth=0).nodes) == {"model_version:risk/1"}
    with pytest.raises(ConfigError):
        lineage(ws, "risk:1", depth=-1)
    with pytest.raises(ConfigError):
        lineage(ws, "risk:1", "sideways")


def test_both_directions_and_json_round_trip(ws):
    graph = lineage(
        ws, "training_set:" + lineage(ws, "risk:1").of_kind("training_set")[0].id, "both"
    )
    levels = {n.kind: n.level for n in graph.nodes.values()}
    assert levels["file"] < 0 < levels["model_version"]
    text = json.dumps(graph.to_dict())
    again = LineageGraph.from_dict(json.loads(text))
    assert again == graph


def test_alerts_retraining_and_the_versions_it_registered(ws):
    """Monitoring records (a profile, an alert whose retrain ran a pipeline that registered
    version 2) join the graph: drift alert -> pipeline run -> new version."""
    from sklearn.dummy import DummyClassifier

    now = datetime.now(UTC)
    with ws.catalog.session() as s:
        s.add(
            MonitorProfile(
                model_name="risk",
                model_version=1,
                reference="training set",
                body={},
                reference_rows=10,
                log_version=None,
                created_at=now,
                updated_at=now,
            )
        )
        s.add(
            PipelineRun(
                id="pr_RETRAIN",
                pipeline="retrain",
                reference="m:f",
                params={},
                executor="local",
                status="succeeded",
                started_at=now,
                ended_at=None,
                created_by="tester",
            )
        )
        alert = Alert(
            rule="drift",
            model_name="risk",
            severity="warning",
            state="open",
            condition="x > 1",
            value=2.0,
            message="drift on risk",
            details={"model_uri": "risk@champion"},
            evaluations=1,
            fired_at=now,
            last_seen_at=now,
        )
        s.add(alert)
        s.flush()
        s.add(
            AlertEvent(
                alert_id=alert.id,
                at=now,
                kind="action",
                action="retrain",
                status="ok",
                details={},
                pipeline_run_id="pr_RETRAIN",
            )
        )
        alert_id = alert.id
    model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
    ws.models.register(model, "risk", signature=None)
    with ws.catalog.session() as s:
        s.add(
            GateDecision(
                model_name="risk",
                candidate_version=2,
                champion_version=1,
                policy="p",
                passed=True,
                numbers={},
                reasons=[],
                pipeline_run_id="pr_RETRAIN",
                decided_at=datetime.now(UTC),
                decided_by="tester",
            )
        )
        s.get(PipelineRun, "pr_RETRAIN").ended_at = datetime.now(UTC)
    graph = lineage(ws, "risk@champion", "down")
    edges = {(e.source, e.relation, e.target) for e in graph.edges}
    profile = graph.of_kind("monitor_profile")[0].key
    assert ("model_version:risk/1", "monitored_by", profile) in edges
    assert (profile, "raised", f"alert:{alert_id}") in edges
    assert (f"alert:{alert_id}", "retrained_by", "pipeline_run:pr_RETRAIN") in edges
    assert ("pipeline_run:pr_RETRAIN", "registered", "model_version:risk/2") in edges
    up = lineage(ws, f"alert:{alert_id}", "up")
    assert "model_version:risk/1" in up.nodes and up.of_kind("file")


def test_the_tree_shows_each_node_once_with_the_file_hash(ws, built):
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(lineage(ws, "risk@champion").render_tree())
    text = console.export_text()
    assert built[1] in text and "model_version risk:1" in text
    mentions = [line for line in text.splitlines() if "training_set ts_" in line]
    assert len(mentions) == 2 and sum("(shown elsewhere)" in m for m in mentions) == 1


def test_html_is_self_contained_and_escapes_names(ws):
    graph = lineage(ws, "risk:1")
    evil = '<script>alert("x")</script>'
    root = graph.nodes[graph.root]
    graph.nodes[graph.root] = type(root)(root.kind, root.id, evil, 0, {"note": evil})
    page = render_html(graph)
    assert "<svg" in page and "</svg>" in page
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<rect") == len(graph.nodes)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_tree_json_html_and_errors(ws, built, capsys, tmp_path):
    home = str(ws.home)
    code, out, err = run_cli(capsys, "lineage", "risk@champion", "--home", home)
    assert code == 0, err
    assert "obs.csv" in out and "model_version risk:1" in out
    code, out, _ = run_cli(capsys, "lineage", "obs@0", "--down", "--json", "--home", home)
    assert code == 0 and "model_version:risk/1" in {n["key"] for n in json.loads(out)["nodes"]}
    page = tmp_path / "lineage.html"
    code, out, _ = run_cli(
        capsys, "lineage", "risk:1", "--depth", "2", "--html", str(page), "--home", home
    )
    assert code == 0 and "<svg" in page.read_text() and f"Wrote {page}" in out
    code, _, err = run_cli(capsys, "lineage", "ghost@champion", "--home", home)
    assert code == 1 and "Error:" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "lineage", "nothing_here", "--home", home)
    assert code == 1 and "delay@champion" in err
    code, _, err = run_cli(capsys, "lineage", "risk:1", "--up", "--down", "--home", home)
    assert code == 1 and "one direction" in err
    code, _, _ = run_cli(capsys, "lineage", "risk:1", "--depth", "-1", "--home", home)
    assert code == 2
