"""Batch inference (``predict_table`` and ``plinth predict``) on a small workspace: a
LightGBM model with a feature service scored over a spine table in many small chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

import plinth
from plinth.catalog.lineage import Node, walk
from plinth.errors import (
    ConfigError,
    ModelNotFoundError,
    SchemaMismatchError,
    TableNotFoundError,
    VersionNotFoundError,
)
from plinth.serving import batch
from plinth.serving.batch import predict_table
from tests.registry.conftest import INPUTS, T0, TS, build_training

SPINE_ROWS = 50
CHUNK = 7


def spine_part(offset: int, rows: int, seed: int) -> pa.Table:
    """Spine rows: keys 0..6 (5 and 6 have no features), some rows before any feature."""
    rng = np.random.default_rng(seed)
    hours = [offset + i - 3 for i in range(rows)]  # the first rows precede the features
    return pa.table(
        {
            "k": pa.array([(offset + i) % 7 for i in range(rows)], pa.int64()),
            "ts": pa.array([T0 + timedelta(hours=h) for h in hours], TS),
            "x": rng.normal(size=rows),
            "label": pa.array(rng.integers(0, 2, size=rows), pa.int64()),
        }
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with 'delay' (LightGBM on the 'svc' features, versions 1 and 2), 'plain'
    (scikit-learn on table columns) and the two-file spine table 'spine'."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("batch") / "ws"
    with plinth.Workspace(settings=plinth.Settings(home=folder, user="tester")) as ws:
        training = build_training(ws)
        frame = training.table.to_pandas()
        params = {"objective": "binary", "min_data_in_leaf": 5, "verbose": -1, "seed": 1}
        booster = lgb.train(params, lgb.Dataset(frame[INPUTS], frame["label"]), 10)
        for _ in range(2):
            ws.models.register(
                booster, "delay", training_set=training, features="svc", example=frame[INPUTS]
            )
        plain = LogisticRegression().fit(frame[["x"]], frame["label"])
        ws.models.register(plain, "plain", example=frame[["x"]].head(5))
        ws.lake.ingest(spine_part(0, 30, 1), table="spine")
        ws.lake.ingest(spine_part(30, SPINE_ROWS - 30, 2), table="spine")
    return folder


@pytest.fixture
def ws(home: Path) -> Iterator[plinth.Workspace]:
    """The module's workspace, opened for one test."""
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as workspace:
        yield workspace


def ordered(table: pa.Table) -> pa.Table:
    """An output table in the input's order (a Delta table keeps no row order)."""
    return table.sort_by("input_row").combine_chunks()


def expected_delay(ws: plinth.Workspace, uri: str = "delay:1") -> np.ndarray:
    """What the model predicts on the whole point-in-time frame, in one call."""
    frame = ws.features.historical("spine", "svc", timestamp="ts", record=False).to_pandas()
    return ws.models.load(uri).predict(frame[INPUTS])


def test_chunks_match_one_call_row_for_row(ws, monkeypatch):
    monkeypatch.setattr(batch, "JOIN_ROWS", 2 * CHUNK)  # features joined 14 rows at a time
    result = predict_table(ws, "delay:1", "spine", output="scored", chunk_rows=CHUNK)
    assert (result.rows, result.chunks) == (SPINE_ROWS, -(-SPINE_ROWS // CHUNK))
    assert (result.model, result.model_version, result.input_version) == ("delay", 1, 1)
    assert result.timestamp == "ts" and result.feature_service == "svc"
    assert result.feature_tables == {"scores": [0]}
    out = ordered(ws.lake.read("scored", version=result.output_version))
    spine = ws.lake.read("spine")
    assert out.column_names == ["input_row", "k", "ts", "label", "prediction", "model_version"]
    assert out.column("input_row").to_pylist() == list(range(SPINE_ROWS))
    assert out.select(["k", "ts", "label"]).equals(spine.select(["k", "ts", "label"]))
    predicted = out.column("prediction").to_numpy()
    np.testing.assert_allclose(predicted, expected_delay(ws), rtol=0, atol=1e-12)
    assert set(out.column("model_version").to_pylist()) == {"delay:1"}
    # rows before the features exist, and keys without features, are scored (NaN features)
    assert not np.isnan(predicted).any()
    data = result.to_dict()
    assert data["input"] == "spine@1" and data["output"] == f"scored@{result.output_version}"
    assert data["model_uri"] == "models:/delay/1" and data["rows_per_second"] > 0


def test_output_version_lineage(ws):
    result = predict_table(ws, "delay:1", "spine", output="lineage_out", chunk_rows=CHUNK)
    with ws.catalog.session() as session:
        edges = walk(session, Node("table_version", f"lineage_out@{result.output_version}"))
    found = {(str(e.source), e.relation) for e in edges}
    assert ("table_version:spine@1", "scored_into") in found
    assert ("model_version:delay/1", "predicted") in found
    assert ("table_version:scores@0", "read_by") in found
    assert ("feature_view:scores@1", "computed") in found
    assert any(e.relation == "trained" for e in edges)  # up through the model's training set


def test_alias_resolved_once_and_pinned_input_version(ws):
    ws.models.set_alias("delay", "champion", 1)

    def move_alias(chunks: int, rows: int) -> None:
        if chunks == 1:
            ws.models.set_alias("delay", "champion", 2)

    try:
        result = predict_table(
            ws, "delay@champion", "spine", version=0, output="pinned", chunk_rows=CHUNK,
            progress=move_alias,
        )  # fmt: skip
    finally:
        ws.models.set_alias("delay", "champion", 1)
    assert result.model_version == 1 and result.input_version == 0 and result.rows == 30
    out = ws.lake.read("pinned")
    assert set(out.column("model_version").to_pylist()) == {"delay:1"}
    again = predict_table(ws, "delay", "spine", output="pinned", mode="append", chunk_rows=100)
    assert again.model_version == 2 and ws.lake.read("pinned").num_rows == 30 + SPINE_ROWS


def test_model_without_features_keeps_columns_and_probability(ws):
    result = predict_table(ws, "plain", "spine", output="plain_out", chunk_rows=CHUNK)
    assert result.feature_service is None and result.timestamp is None
    out = ordered(ws.lake.read("plain_out"))
    assert out.column_names == [
        "input_row", "k", "ts", "label", "prediction", "probability", "model_version"
    ]  # fmt: skip
    model = ws.models.load("plain:1")
    frame = ws.lake.read("spine", columns=["x"]).to_pandas()
    assert out.column("prediction").to_pylist() == model.predict(frame).tolist()
    np.testing.assert_allclose(out.column("probability"), model.predict_proba(frame)[:, 1])
    kept = predict_table(ws, "plain", "spine", output="plain_keep", keep=["k"])
    assert ws.lake.read("plain_keep").column_names[:2] == ["input_row", "k"]
    assert ws.lake.read("plain_keep").num_rows == kept.rows


def test_missing_integer_input_reaches_the_model_as_nan(ws):
    import lightgbm as lgb
    import pandas as pd

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"k": rng.integers(0, 5, 200), "x": rng.normal(size=200)})
    params = {"objective": "regression", "min_data_in_leaf": 5, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(frame, frame["k"] + frame["x"]), 5)
    ws.models.register(booster, "bykey", example=frame.head())  # k: integer in the signature
    ws.lake.ingest(pa.table({"k": [1, None, 3], "x": [0.5, 0.1, -0.2]}), table="nullkey")
    predict_table(ws, "bykey", "nullkey", output="nullkey_out")
    out = ordered(ws.lake.read("nullkey_out"))
    expected = booster.predict(pd.DataFrame({"k": [1.0, np.nan, 3.0], "x": [0.5, 0.1, -0.2]}))
    np.testing.assert_allclose(out.column("prediction").to_numpy(), expected)


def test_bad_input(ws):
    with pytest.raises(ModelNotFoundError):
        predict_table(ws, "nope", "spine", output="o")
    with pytest.raises(TableNotFoundError):
        predict_table(ws, "delay", "missing", output="o")
    with pytest.raises(VersionNotFoundError):
        predict_table(ws, "delay", "spine", version=9, output="o")
    with pytest.raises(ConfigError, match="is the input table"):
        predict_table(ws, "delay", "spine", output="spine")
    with pytest.raises(ConfigError, match="Use 'local'"):
        predict_table(ws, "delay", "spine", output="o", executor="spark")
    with pytest.raises(ConfigError, match="mode 'upsert'"):
        predict_table(ws, "delay", "spine", output="o", mode="upsert")
    with pytest.raises(ConfigError, match="chunk_rows"):
        predict_table(ws, "delay", "spine", output="o", chunk_rows=0)
    ws.lake.ingest(pa.table({"k": [1], "ts": pa.array([T0], TS), "y": [1.0]}), table="no_x")
    with pytest.raises(SchemaMismatchError, match="lacks column 'x'"):
        predict_table(ws, "delay", "no_x", output="o", timestamp="ts")
    with pytest.raises(SchemaMismatchError, match="no column 'when'"):
        predict_table(ws, "delay", "spine", output="o", timestamp="when")
    two_times = pa.table({"k": [1], "a": pa.array([T0], TS), "b": pa.array([T0], TS), "x": [0.0]})
    ws.lake.ingest(two_times, table="two_times")
    with pytest.raises(ConfigError, match="--timestamp"):
        predict_table(ws, "delay", "two_times", output="o")
    assert predict_table(ws, "delay", "two_times", output="o", timestamp="b").rows == 1
    with pytest.raises(SchemaMismatchError, match="no column 'zz' to keep"):
        predict_table(ws, "delay", "spine", output="o2", keep=["zz"])


def test_failed_job_writes_nothing(ws):
    def fail(chunks: int, rows: int) -> None:
        if chunks == 3:
            raise RuntimeError("stopped on purpose")

    with pytest.raises(RuntimeError, match="on purpose"):
        predict_table(ws, "delay", "spine", output="never", chunk_rows=CHUNK, progress=fail)
    with pytest.raises(TableNotFoundError):
        ws.lake.version("never")


def cli() -> typer.Typer:
    from plinth.cli.predict_cmd import register

    app = typer.Typer()
    app.command("noop")(lambda: None)  # two commands, so 'predict' is a subcommand
    register(app)
    return app


def test_cli_prints_summary_and_json(home):
    runner = CliRunner()
    args = ["predict", "delay:1", "--table", "spine", "--output", "cli_out", "--home", str(home)]
    result = runner.invoke(cli(), [*args, "--chunk-rows", "7"])
    assert result.exit_code == 0, result.output
    assert "Scored 50 rows of spine@1 with delay:1 into cli_out@0" in result.output
    result = runner.invoke(cli(), [*args, "--json", "--timestamp", "ts"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rows"] == SPINE_ROWS and data["output"] == "cli_out@1"


def test_cli_bad_input_exits_without_traceback(home, monkeypatch, capsys):
    import plinth.cli.main as main_module

    monkeypatch.setattr(main_module, "app", cli())
    code = main_module.main(
        ["predict", "delay", "--table", "spine", "--output", "spine", "--home", str(home)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "is the input table" in captured.err + captured.out
    assert "Traceback" not in captured.err + captured.out
    code = main_module.main(["predict", "delay", "--table", "spine", "--home", str(home)])
    assert code == 2  # --output is required


@pytest.mark.ray
def test_ray_executor_gives_identical_predictions(ws, ray_address):
    local = predict_table(ws, "delay:1", "spine", output="ray_local", chunk_rows=CHUNK)
    result = predict_table(
        ws, "delay:1", "spine", output="ray_out", chunk_rows=CHUNK, executor="ray",
        ray_address=ray_address,
    )  # fmt: skip
    assert result.executor == "ray" and (result.rows, result.chunks) == (local.rows, local.chunks)
    assert ordered(ws.lake.read("ray_out")).equals(ordered(ws.lake.read("ray_local")))
