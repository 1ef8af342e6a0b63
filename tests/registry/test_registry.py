"""Registering versions with their provenance, looking them up, aliases with history, diffs."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import update

import plinth
from plinth.catalog.lineage import Node, walk
from plinth.catalog.models import Run as RunRecord
from plinth.errors import ConfigError, ModelNotFoundError, NotFoundError, SchemaMismatchError
from tests.registry.conftest import INPUTS, build_training, fit_logistic, frame_of


def _set_commit(ws: plinth.Workspace, run_id: str, commit: str) -> None:
    with ws.catalog.session() as session:
        session.execute(
            update(RunRecord)
            .where(RunRecord.id == run_id)
            .values(environment={"git": {"commit": commit, "branch": "main", "dirty": True}})
        )


def test_log_model_links_run_training_set_features_and_commit(workspace):
    training = build_training(workspace)
    model = fit_logistic(training)
    with workspace.run("clf-exp", params={"C": 1.0}, capture=False) as run:
        run.use(training)
        _set_commit(workspace, run.id, "a1b2c3")
        run.log_metrics({"auc": 0.71, "log_loss": 0.5})
        info = run.log_model(
            model, "clf", features="svc", metrics={"auc": 0.72}, tags={"team": "ops"}
        )
    assert info.uri == "models:/clf/1" and info.lineage_id == "clf/1"
    assert info.run_id == run.id and info.training_set_id == training.id
    assert (info.feature_service, info.feature_service_version) == ("svc", 1)
    assert info.code_commit == "a1b2c3" and info.details["git"]["dirty"] is True
    assert info.metrics == {"auc": 0.72, "log_loss": 0.5}
    assert info.tags == {"team": "ops"}
    # The signature comes from the training set's columns the model was fitted on.
    assert info.signature.columns == INPUTS
    assert info.details["training_data"]["rows"] == training.table.num_rows
    assert info.details["training_data"]["time_range"]["ts"][0].startswith("2024-01-01T00:00")
    with workspace.catalog.session() as session:
        edges = walk(session, Node("model_version", "clf/1"), "up", depth=3)
    relations = {(str(e.source), e.relation) for e in edges}
    assert (f"run:{run.id}", "produced") in relations
    assert (f"training_set:{training.id}", "trained") in relations
    assert ("table_version:obs@0", "spine_of") in relations
    assert ("feature_view:scores@1", "computed") in relations


def test_register_without_a_run_and_the_lookups(ws):
    training = build_training(ws)
    model = fit_logistic(training)
    inputs, _ = frame_of(training)
    first = ws.models.register(model, "clf", training_set=training.id, description="first")
    assert first.run_id is None and first.training_set_id == training.id
    second = ws.models.register(model, "clf", example=inputs.head(3), signature=None)
    assert second.version == 2 and second.signature is None and second.example_digest
    other = ws.models.register(model, "other", training_set=training, signature=None)
    assert other.version == 1
    assert ws.models.resolve("clf") == ("clf", 2)
    assert ws.models.resolve("models:/clf/1") == ("clf", 1)
    assert ws.models.get("clf:1").description == "first"
    assert [v.version for v in ws.models.versions("clf")] == [1, 2]
    listed = {m.name: m for m in ws.models.list()}
    assert listed["clf"].version_count == 2 and listed["clf"].latest_version == 2
    assert listed["other"].aliases == {}
    assert ws.models.get("clf").to_dict()["uri"] == "models:/clf/2"
    loaded = ws.models.load("clf:1")
    assert np.array_equal(loaded.predict(inputs), model.predict(inputs))
    with pytest.raises(SchemaMismatchError, match="lacks column 'scores__score'"):
        loaded.predict(inputs[["x"]])
    with pytest.raises(SchemaMismatchError, match="has column 'k'"):
        loaded.predict(inputs.assign(k=1))
    with pytest.raises(SchemaMismatchError, match="Column 'x' is string"):
        loaded.predict(inputs.assign(x="high"))


def test_lookup_errors(ws):
    with pytest.raises(ModelNotFoundError, match="No model is registered under the name 'nope'"):
        ws.models.get("nope")
    with pytest.raises(ModelNotFoundError):
        ws.models.versions("nope")
    with pytest.raises(ConfigError, match="not a valid model name"):
        ws.models.get("9lives")
    model = fit_logistic(build_training(ws))
    ws.models.register(model, "clf", signature=None)
    with pytest.raises(ModelNotFoundError, match="has no version 7") as caught:
        ws.models.load("clf:7")
    assert caught.value.hint == "Its versions are: 1."
    with pytest.raises(ModelNotFoundError, match="has no alias 'champion'"):
        ws.models.get("clf@champion")
    assert ws.models.example("clf") is None


def test_training_set_resolution_errors(ws):
    training = build_training(ws)
    model = fit_logistic(training)
    unrecorded = ws.features.historical("obs", "svc", timestamp="ts", record=False)
    with pytest.raises(ConfigError, match="record=False"):
        ws.models.register(model, "clf", training_set=unrecorded)
    with pytest.raises(NotFoundError, match="No training set 'ts_missing'"):
        ws.models.register(model, "clf", training_set="ts_missing")
    with pytest.raises(ConfigError, match="Cannot use a int as a model's training set"):
        ws.models.register(model, "clf", training_set=3)
    again = ws.features.historical("obs", "svc", timestamp="ts")
    with ws.run("exp", capture=False) as run:
        run.use(training)
        run.use(again)
        with pytest.raises(ConfigError, match="used 2 training sets"):
            run.log_model(model, "clf")
        info = run.log_model(model, "clf", training_set=again)
    assert info.training_set_id == again.id


def test_feature_service_must_be_applied(ws):
    training = build_training(ws)
    model = fit_logistic(training)
    svc = plinth.FeatureService("svc", features=["scores"])
    assert ws.models.register(model, "a", features=svc, signature=None).feature_service_version == 1
    with pytest.raises(NotFoundError, match="in this form has not been applied"):
        changed = plinth.FeatureService("svc", features=["scores:score"])
        ws.models.register(model, "a", features=changed)
    with pytest.raises(NotFoundError, match="'missing' has not been applied"):
        ws.models.register(model, "a", features="missing")
    with pytest.raises(ConfigError, match="Cannot use a int as a model's features"):
        ws.models.register(model, "a", features=3)
    with pytest.raises(ConfigError, match="signature=3 is not understood"):
        ws.models.register(model, "a", signature=3)
    bad_example = frame_of(training)[0].rename(columns={"x": "y"})
    with pytest.raises(ConfigError, match="could not predict on the input example"):
        ws.models.register(model, "a", example=bad_example)


def test_other_ranks_do_not_register(ws):
    from plinth.tracking.run import attach_run

    model = fit_logistic(build_training(ws))
    with ws.run("exp", capture=False) as run:
        assert attach_run(ws, run.id, rank=1).log_model(model, "clf") is None
    with pytest.raises(ModelNotFoundError):
        ws.models.get("clf")


def test_aliases_set_move_remove_with_history(workspace):
    model = fit_logistic(build_training(workspace))
    for _ in range(3):
        workspace.models.register(model, "clf", signature=None)
    models = workspace.models
    first = models.set_alias("clf", "champion", 1, reason="first one")
    assert (first.action, first.version, first.previous_version) == ("set", 1, None)
    assert models.set_alias("clf", "champion", 1) is None  # unchanged: nothing recorded
    moved = models.set_alias("clf", "champion", 3, reason="better AUC")
    assert (moved.action, moved.version, moved.previous_version) == ("move", 3, 1)
    models.set_alias("clf", "challenger", 2)
    assert models.resolve("clf@champion") == ("clf", 3)
    assert models.resolve("models:/clf@challenger") == ("clf", 2)
    assert models.get("clf:3").aliases == ("champion",)
    assert {m.name: m.aliases for m in models.list()}["clf"] == {"challenger": 2, "champion": 3}
    removed = models.remove_alias("clf", "challenger", reason="done")
    assert (removed.action, removed.version, removed.previous_version) == ("remove", None, 2)
    with pytest.raises(ModelNotFoundError, match="has no alias 'challenger'"):
        models.resolve("clf@challenger")
    history = models.alias_history("clf")
    assert [(e.alias, e.action, e.version, e.previous_version) for e in history] == [
        ("champion", "set", 1, None),
        ("champion", "move", 3, 1),
        ("challenger", "set", 2, None),
        ("challenger", "remove", None, 2),
    ]
    assert [e.reason for e in models.alias_history("clf", "champion")] == [
        "first one",
        "better AUC",
    ]
    assert history[0].by == "tester" and history[0].to_dict()["at"].endswith("+00:00")


def test_alias_errors(ws):
    model = fit_logistic(build_training(ws))
    ws.models.register(model, "clf", signature=None)
    with pytest.raises(ModelNotFoundError, match="No model is registered under the name 'x'"):
        ws.models.set_alias("x", "champion", 1)
    with pytest.raises(ModelNotFoundError, match="Model 'clf' has no version 2"):
        ws.models.set_alias("clf", "champion", 2)
    with pytest.raises(ConfigError, match="reserved"):
        ws.models.set_alias("clf", "latest", 1)
    with pytest.raises(ConfigError, match="not a valid alias"):
        ws.models.set_alias("clf", "Champion", 1)
    with pytest.raises(ModelNotFoundError, match="has no alias 'champion'") as caught:
        ws.models.remove_alias("clf", "champion")
    assert "Its aliases are: none" in caught.value.hint
    with pytest.raises(ModelNotFoundError):
        ws.models.alias_history("x")
    assert ws.models.alias_history("clf") == []


def test_diff_puts_two_versions_side_by_side(ws):
    training = build_training(ws)
    model = fit_logistic(training)
    inputs, _ = frame_of(training)
    with ws.run("exp", params={"C": 1.0}, capture=False) as run:
        run.use(training)
        run.log_metric("auc", 0.7)
        run.log_model(model, "clf", features="svc")
    ws.lake.ingest(
        __import__("tests.registry.conftest", fromlist=["observations"]).observations(seed=5),
        table="obs",
        mode="overwrite",
    )
    newer = ws.features.historical("obs", "svc", timestamp="ts")
    with ws.run("exp", params={"C": 0.5}, capture=False) as run:
        run.use(newer)
        run.log_metric("auc", 0.75)
        run.log_model(model, "clf", features="svc", example=inputs[["x"]].assign(
            scores__score=inputs["scores__score"].astype("float32")).head(3))  # fmt: skip
    result = ws.models.diff("clf:1", "clf@latest")
    data = result.to_dict()
    assert (data["a"], data["b"]) == ("models:/clf/1", "models:/clf/2")
    assert data["param"]["C"] == ["1.0", "0.5"]
    assert data["metric"]["auc"] == [0.7, 0.75]
    assert data["data"]["table:obs"] == [0, 1]
    assert data["data"]["table:scores"] == [0, 0]
    assert data["feature"]["service"] == ["svc v1", "svc v1"]
    assert data["signature"]["input:scores__score"] == ["float (double)", "float (float32)"]
    assert "param:C" in data["differs"] and "data:table:scores" not in data["differs"]
    assert "feature:view:scores" not in data["differs"]
