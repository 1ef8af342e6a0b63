"""``plinth optimize``: ONNX conversion of real models, int8 quantization, the output check,
registration with lineage, and clean errors (API and CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

import plinth
from plinth.cli import optimize_cmd
from plinth.cli.output import console
from plinth.errors import ConfigError, ModelNotFoundError, PlinthError, SchemaMismatchError

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
pytest.importorskip("onnxmltools")

from plinth.serving.optimize import OutputMismatchError, optimization_of, optimize

ROWS = 1500
FEATURES = ["a", "b", "c", "hour"]


def _frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Four numeric inputs (one integer), a binary label ``y`` and a value ``v``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["a", "b", "c"])
    frame["hour"] = rng.integers(0, 24, rows)
    signal = frame.a + 0.5 * frame.b - 0.3 * frame.c + 0.05 * (frame.hour - 12)
    frame["y"] = (signal + rng.normal(scale=0.7, size=rows) > 0).astype("int64")
    frame["v"] = 30.0 * signal + rng.normal(scale=5.0, size=rows)
    return frame


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print tables 200 columns wide, so no cell is cut."""
    monkeypatch.setattr(console, "_width", 200)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    """The module's data set."""
    return _frame()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, data: pd.DataFrame) -> Iterator[plinth.Workspace]:
    """An embedded workspace with the data as lake table ``valid``, a logistic regression
    ``lr:1`` and a model no converter knows, ``odd:1`` (label propagation)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelPropagation

    home = tmp_path_factory.mktemp("optimize") / "ws"
    workspace = plinth.Workspace(settings=plinth.Settings(home=home, user="tester"))
    workspace.lake.ingest(pa.Table.from_pandas(data, preserve_index=False), table="valid")
    example = data[FEATURES].head(5)
    model = LogisticRegression().fit(data[FEATURES], data.y)
    workspace.models.register(model, "lr", example=example, tags={"owner": "risk"})
    odd = LabelPropagation().fit(data[FEATURES].head(200), data.y.head(200))
    workspace.models.register(odd, "odd", example=example)
    yield workspace
    workspace.close()


def test_sklearn_logistic_regression(ws, data):
    model = ws.models.load("lr:1").raw
    result = optimize(ws, "lr:1", data="valid", label="y")
    assert result.passed and result.target == ws.models.versions("lr")[-1].uri
    assert result.compared == "class probabilities" and result.error <= 1e-4
    assert result.label_agreement == 1.0 and result.data == "table valid@0"
    assert set(result.metrics_before) == {"auc", "log_loss", "accuracy"}
    assert all(abs(d) < 1e-6 for d in result.metric_deltas.values())
    info = ws.models.get(result.target)
    assert info.flavor == "onnx" and "ONNX conversion of lr:1" in (info.description or "")
    assert info.signature.columns == FEATURES
    assert info.tags["optimized_from"] == "lr:1" and info.tags["owner"] == "risk"
    recorded = optimization_of(info)
    assert recorded["source"] == "models:/lr/1" and recorded["passed"] is True
    assert info.metrics["optimize.size_ratio"] == pytest.approx(result.size_ratio)
    # The same request works on the ONNX version, with the same answers (class labels).
    request = data[FEATURES].tail(50)
    onnx_labels = ws.models.load(result.target).predict(request)
    assert (onnx_labels == model.predict(request)).all()


def test_lightgbm_on_its_training_set_keeps_lineage(ws):
    import lightgbm as lgb

    from tests.registry.conftest import INPUTS, build_training

    training = build_training(ws)
    frame = training.table.to_pandas()
    assert frame["scores__score"].isna().any()  # missing values go through the ONNX trees
    params = {"objective": "binary", "min_data_in_leaf": 5, "verbosity": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(frame[INPUTS], frame.label), num_boost_round=30)
    with ws.run("exp", capture=False) as run:
        run.use(training)
        original = run.log_model(booster, "gbm", features="svc", example=frame[INPUTS].head(5))
    result = optimize(ws, "gbm:1", label="label")
    assert result.passed and result.data == f"training set {original.training_set_id}"
    assert result.compared == "predictions" and result.error <= 1e-4
    assert result.rows == frame.shape[0] and result.metrics_before["auc"] > 0.5
    info = ws.models.get(result.target)
    assert info.training_set_id == original.training_set_id
    assert (info.feature_service, info.feature_service_version) == ("svc", 1)
    # The booster's predict gives the positive class's probability; so does the ONNX version.
    scores = ws.models.load(result.target).predict(frame[INPUTS])
    assert scores.shape == (len(frame),)
    np.testing.assert_allclose(scores, booster.predict(frame[INPUTS]), atol=1e-5)


def test_lightgbm_categorical_columns(ws, data):
    import lightgbm as lgb

    rng = np.random.default_rng(1)
    frame = data[FEATURES].assign(carrier=pd.Categorical(rng.choice(["AA", "B6", "DL"], ROWS)))
    label = (data.y.to_numpy() + (frame.carrier == "B6").to_numpy()) > 0
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(frame, label.astype(int)), num_boost_round=20)
    ws.models.register(booster, "cat", example=frame.head(5))
    result = optimize(ws, "cat:1")
    assert result.passed and result.data == "input example"
    request = frame.head(4).assign(carrier=["AA", "ZZ", None, "DL"])  # unknown and missing too
    np.testing.assert_allclose(
        ws.models.load(result.target).predict(request),
        ws.models.load("cat:1").predict(request),
        atol=1e-5,
    )


def test_xgboost_regressor_and_trees_under_quantization(ws, data):
    import xgboost as xgb

    model = xgb.XGBRegressor(n_estimators=40, max_depth=4, n_jobs=1).fit(data[FEATURES], data.v)
    ws.models.register(model, "xgb", example=data[FEATURES].head(5))
    plain = optimize(ws, "xgb:1", data="valid@0", label="v")
    assert plain.passed and plain.error <= 1e-4 and set(plain.metrics_before) == {"rmse", "mae"}
    assert abs(plain.metric_deltas["rmse"]) < 1e-3
    quantized = optimize(ws, "xgb:1", data="valid", label="v", quantize="dynamic")
    # Trees have no matrix products: int8 quantization leaves them as they are.
    assert quantized.int8_tensors == 0 and quantized.size_after == plain.size_after
    predictions = ws.models.load(quantized.target).predict(data[FEATURES].head(20))
    np.testing.assert_allclose(predictions, model.predict(data[FEATURES].head(20)), rtol=1e-5)


def _mlp(data: pd.DataFrame) -> object:
    """An MLP with two hidden layers of 256 units, trained on the four inputs."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(len(FEATURES), 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 1),
    )
    x = torch.tensor(data[FEATURES].to_numpy(np.float32))
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(data.y.to_numpy(np.float32)).unsqueeze(1)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(40):
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
        optimizer.step()
    return net.eval()


def test_pytorch_mlp_int8_is_half_the_size(ws, data):
    net = _mlp(data)
    inputs = (data[FEATURES] - data[FEATURES].mean()) / data[FEATURES].std()
    scaled = pd.DataFrame(inputs.to_numpy(np.float32), columns=FEATURES).assign(y=data.y)
    ws.lake.ingest(pa.Table.from_pandas(scaled, preserve_index=False), table="scaled")
    ws.models.register(net, "mlp", example=scaled[FEATURES].head(5))
    plain = optimize(ws, "mlp:1", data="scaled", label="y")
    assert plain.passed and plain.error <= 1e-4 and plain.int8_tensors == 0
    quantized = optimize(ws, "mlp:1", data="scaled", label="y", quantize="dynamic")
    print(
        f"MLP int8: {quantized.size_before:,} -> {quantized.size_after:,} bytes "
        f"({quantized.size_ratio:.0%}), AUC delta {quantized.metric_deltas['auc']:+.5f}, "
        f"accuracy delta {quantized.metric_deltas['accuracy']:+.4f}"
    )
    assert quantized.passed and quantized.int8_tensors >= 3
    assert quantized.size_after <= 0.5 * quantized.size_before
    assert abs(quantized.metric_deltas["auc"]) <= 0.01
    assert quantized.target == "models:/mlp/3"
    request = scaled[FEATURES].head(8)
    logits = ws.models.load(quantized.target).predict(request)
    original = ws.models.load("mlp:1").predict(request)
    assert logits.shape == original.shape == (8, 1)
    assert np.abs(logits - original).max() < 0.2
    # Without labels, a quantized model must stay within 0.05 of the original's outputs; a
    # tolerance of zero fails and registers nothing.
    with pytest.raises(OutputMismatchError, match="Nothing was registered") as caught:
        optimize(ws, "mlp:1", data="scaled", quantize="dynamic", tolerance=0.0)
    assert caught.value.result.passed is False and caught.value.hint
    assert [v.version for v in ws.models.versions("mlp")] == [1, 2, 3]


def test_bad_input_is_a_clear_error(ws):
    with pytest.raises(ModelNotFoundError):
        optimize(ws, "nope:1")
    with pytest.raises(ConfigError, match="not a quantization mode"):
        optimize(ws, "lr:1", quantize="static")
    with pytest.raises(SchemaMismatchError, match="no label column 'late'"):
        optimize(ws, "lr:1", data="valid", label="late")
    with pytest.raises(SchemaMismatchError, match="example has no label column 'y'"):
        optimize(ws, "lr:1", label="y")
    with pytest.raises(ConfigError, match="does not name a table version"):
        optimize(ws, "lr:1", data="valid@latest")
    with pytest.raises(ConfigError, match=r"skl2onnx .* could not convert") as caught:
        optimize(ws, "odd:1")
    assert isinstance(caught.value, PlinthError) and "LabelPropagation" in str(caught.value)
    assert [v.version for v in ws.models.versions("odd")] == [1]
    converted = optimize(ws, "lr:1", dry_run=False).target
    with pytest.raises(ConfigError, match="already an ONNX model"):
        optimize(ws, converted)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a second command keeps 'optimize' a subcommand
    optimize_cmd.register(app)
    return app


def test_cli_registers_and_sets_alias(ws):
    home = str(ws.settings.home)
    result = CliRunner().invoke(
        _cli(), ["optimize", "lr:1", "--onnx", "--data", "valid", "--label", "y", "--alias",
                 "fast", "--home", home, "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["passed"] and payload["alias"] == "fast" and payload["size_ratio"] > 0
    assert ws.models.get("lr@fast").uri == payload["target"]
    result = CliRunner().invoke(_cli(), ["optimize", "lr:1", "--onnx", "--dry-run", "--home",
                                         home])  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("models:/lr/1", "passed", "input example", "size", "predict p50, 1 row",
                 "dry run: nothing was registered"):  # fmt: skip
        assert text in result.output, text


def test_cli_errors_exit_non_zero_without_traceback(ws, capsys, monkeypatch):
    from plinth.cli import main as cli

    monkeypatch.setattr(cli, "app", _cli())  # main() as the plinth command runs it
    home = str(ws.settings.home)
    assert cli.main(["optimize", "lr:1", "--home", home]) == 1
    error = capsys.readouterr().err
    assert "needs a target format" in error and "--onnx" in error and "Traceback" not in error
    assert cli.main(["optimize", "missing", "--onnx", "--home", home]) == 1
    assert "missing" in capsys.readouterr().err
    assert cli.main(["optimize", "odd:1", "--onnx", "--home", home]) == 1
    error = capsys.readouterr().err
    assert "could not convert" in error and "Traceback" not in error
