"""Every flavor round-trips: register, load from the store (no cache), identical predictions.

A flavor's test is skipped only when its library is not installed.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import plinth
from plinth.errors import ConfigError
from plinth.registry.flavors import FLAVORS, detect, get_flavor
from plinth.registry.service import Registry


def fresh_load(ws: plinth.Workspace, uri: str):
    """Load through a new registry, so the model comes from the store, not the cache."""
    return Registry(ws).load(uri)


def data(rows: int = 60, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
            "c": pd.Categorical(rng.choice(["x", "y", "z"], size=rows)),
        }
    )
    label = ((frame["a"] + (frame["c"] == "y")) > 0.3).astype("int64").to_numpy()
    return frame, label


def test_detection_never_imports_other_libraries():
    # Stand-ins whose classes claim to come from each library: detection reads class names.
    code = (
        "import sys\n"
        "from plinth.registry.flavors import detect\n"
        "def fake(module, name):\n"
        "    return type(name, (), {'__module__': module})()\n"
        "assert detect(fake('sklearn.linear_model._base', 'LinearRegression')) == 'sklearn'\n"
        "assert detect(fake('lightgbm.basic', 'Booster')) == 'lightgbm'\n"
        "assert detect(fake('xgboost.core', 'Booster')) == 'xgboost'\n"
        "assert detect(fake('torch.nn.modules.module', 'Module')) == 'pytorch'\n"
        "assert detect(fake('onnx.onnx_ml_pb2', 'ModelProto')) == 'onnx'\n"
        "loaded = [m for m in ('sklearn', 'torch', 'xgboost', 'lightgbm', 'onnx', 'onnxruntime')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_objects_and_flavors_are_refused(ws):
    with pytest.raises(ConfigError, match=r"Cannot tell which flavor a builtins\.dict is"):
        detect({})
    with pytest.raises(ConfigError, match="not a model flavor"):
        get_flavor("tensorflow")
    with pytest.raises(ConfigError, match="Cannot tell which flavor"):
        ws.models.register(object(), "thing")
    from sklearn.linear_model import LinearRegression

    with pytest.raises(ConfigError, match="is not a onnx model"):
        ws.models.register(LinearRegression(), "thing", flavor="onnx")
    assert FLAVORS[-1] == "sklearn"


def test_sklearn_pipeline(ws):
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, label = data()
    inputs = frame[["a", "b"]]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(inputs, label)
    info = ws.models.register(model, "sk", example=inputs.head(5))
    assert info.flavor == "sklearn" and set(info.files) == {"model.pkl", "input_example.parquet"}
    assert info.signature.columns == ["a", "b"]
    outputs = info.signature.to_dict()["outputs"]
    assert outputs == {"type": "tensor", "dtype": "int64", "shape": [-1]}
    loaded = fresh_load(ws, "sk")
    assert np.array_equal(loaded.predict(inputs), model.predict(inputs))
    assert np.array_equal(loaded.predict_proba(inputs), model.predict_proba(inputs))
    assert type(loaded.raw) is type(model)
    assert ws.models.example("sk").equals(inputs.head(5).reset_index(drop=True))


def test_sklearn_classifier_with_text_labels(ws):
    pytest.importorskip("sklearn")
    from sklearn.tree import DecisionTreeClassifier

    frame, label = data()
    names = np.where(label == 1, "late", "on time")
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame[["a", "b"]], names)
    info = ws.models.register(model, "tree", example=frame[["a", "b"]].head(4))
    assert info.signature.outputs.dtype == "<U7"
    loaded = fresh_load(ws, "tree")
    assert list(loaded.predict(frame[["a", "b"]])) == list(model.predict(frame[["a", "b"]]))


def test_lightgbm_booster_with_categories(ws):
    lgb = pytest.importorskip("lightgbm")
    frame, label = data()
    params = {"objective": "binary", "num_threads": 1, "verbosity": -1, "min_data_in_leaf": 5}
    booster = lgb.train(params, lgb.Dataset(frame, label), num_boost_round=5)
    info = ws.models.register(booster, "lgb", example=frame.head(5))
    assert info.flavor == "lightgbm" and "model.pkl" not in info.files
    assert info.details["meta"]["kind"] == "booster"
    loaded = fresh_load(ws, "lgb")
    expected = booster.predict(frame)
    assert np.array_equal(loaded.predict(frame), expected)
    # Plain strings where the model was trained on categories: mapped onto its categories.
    as_strings = frame.assign(c=frame["c"].astype(str))
    assert np.array_equal(loaded.predict(as_strings), expected)
    assert np.array_equal(loaded.predict(as_strings.iloc[[3]]), expected[[3]])


def test_lightgbm_classifier(ws):
    lgb = pytest.importorskip("lightgbm")
    frame, label = data()
    model = lgb.LGBMClassifier(n_estimators=5, num_threads=1, verbosity=-1, min_child_samples=5)
    model.fit(frame, label)
    info = ws.models.register(model, "lgbc", signature=None)
    assert info.signature is None and set(info.files) == {"model.txt", "model.pkl"}
    loaded = fresh_load(ws, "lgbc")
    assert type(loaded.raw) is lgb.LGBMClassifier
    assert np.array_equal(loaded.predict(frame), model.predict(frame))
    assert np.array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_xgboost_booster_and_regressor(ws):
    xgb = pytest.importorskip("xgboost")
    frame, label = data()
    inputs = frame[["a", "b"]]
    regressor = xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1).fit(inputs, label)
    info = ws.models.register(regressor, "xgbr", example=inputs.head(3))
    assert info.flavor == "xgboost" and info.signature.columns == ["a", "b"]
    loaded = fresh_load(ws, "xgbr")
    assert type(loaded.raw) is xgb.XGBRegressor
    assert np.array_equal(loaded.predict(inputs), regressor.predict(inputs))
    booster = xgb.train(
        {"max_depth": 2, "nthread": 1}, xgb.DMatrix(inputs, label), num_boost_round=4
    )
    ws.models.register(booster, "xgbb", example=inputs.head(3))
    loaded = fresh_load(ws, "xgbb")
    assert np.array_equal(loaded.predict(inputs), booster.predict(xgb.DMatrix(inputs)))
    with pytest.raises(plinth.PlinthError, match="lacks column 'b'"):
        loaded.predict(inputs[["a"]])


def _network():
    import torch

    from tests.registry.torch_models import TinyNet

    torch.manual_seed(0)
    return TinyNet(3)


def test_pytorch_pickled_module(ws):
    torch = pytest.importorskip("torch")
    net = _network()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    info = ws.models.register(net, "net", example=x[:2])
    assert info.details["meta"]["format"] == "pickle"
    inputs = info.signature.to_dict()["inputs"]
    assert inputs == {"type": "tensor", "dtype": "float32", "shape": [-1, 3]}
    assert info.signature.outputs.shape == (-1, 1)
    loaded = fresh_load(ws, "net")
    with torch.inference_mode():
        expected = net(torch.from_numpy(x)).numpy()
    assert np.array_equal(loaded.predict(x), expected)
    assert not loaded.raw.training


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_pytorch_torchscript_and_tensor_example(ws):
    torch = pytest.importorskip("torch")
    scripted = torch.jit.script(_network())
    x = torch.randn(5, 3)
    info = ws.models.register(scripted, "scripted", example=x[:2])
    assert info.details["meta"]["format"] == "torchscript"
    loaded = fresh_load(ws, "scripted")
    with torch.inference_mode():
        expected = scripted(x).numpy()
    assert np.array_equal(loaded.predict(x.numpy()), expected)
    assert np.array_equal(loaded.predict(x.numpy().astype("float64")), expected)


def test_pytorch_columns_signature_from_a_frame(ws):
    pytest.importorskip("torch")
    net = _network()
    frame = pd.DataFrame(np.random.default_rng(2).normal(size=(4, 3)), columns=["p", "q", "r"])
    ws.models.register(net, "framed", example=frame.astype("float32"))
    loaded = fresh_load(ws, "framed")
    reordered = frame[["r", "q", "p"]]
    assert np.array_equal(loaded.predict(reordered), loaded.predict(frame))


def _onnx_model():
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[1.5], [-2.0]], dtype="float32"), "w")
    bias = numpy_helper.from_array(np.array([0.25], dtype="float32"), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "w"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["Y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
        initializer=[weights, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx(ws):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = _onnx_model()
    frame = pd.DataFrame({"u": [1.0, 2.0, 3.0], "v": [0.5, 0.0, -1.0]})
    info = ws.models.register(model, "lin", example=frame)
    assert info.flavor == "onnx" and info.details["meta"]["inputs"] == ["X"]
    loaded = fresh_load(ws, "lin")
    expected = frame.to_numpy(dtype="float32") @ np.array([[1.5], [-2.0]], "float32") + 0.25
    assert np.array_equal(loaded.predict(frame), expected)
    assert loaded.raw.get_inputs()[0].name == "X"
