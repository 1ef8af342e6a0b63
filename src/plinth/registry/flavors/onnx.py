"""ONNX flavor: an ``onnx.ModelProto``, stored as ONNX bytes and run with ONNX Runtime.

The loaded model is an ``onnxruntime.InferenceSession`` on the CPU. A model with one input
gets the whole input as a matrix (a DataFrame's columns in the signature's order); a model
with one input per column gets each column as an ``[n, 1]`` array (missing values of a
string input as empty strings). The prediction is the first output, or the output named by
``meta["output"]``.

Example:
    >>> # files, meta = save(model_proto); predict(load(files, meta), frame, meta)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.errors import SchemaMismatchError

NAME = "onnx"
FILE = "model.onnx"
_NUMPY_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


def matches(model: Any) -> bool:
    """Whether the object is an ``onnx.ModelProto``."""
    cls = type(model)
    return cls.__name__ == "ModelProto" and cls.__module__.split(".")[0] == "onnx"


def save(model: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The serialized model, with its input and output names."""
    import onnx

    meta = {
        "class": "onnx.ModelProto",
        "library": "onnx",
        "version": onnx.__version__,
        "inputs": [i.name for i in model.graph.input],
        "outputs": [o.name for o in model.graph.output],
        "opset": [int(o.version) for o in model.opset_import],
    }
    return {FILE: model.SerializeToString()}, meta


def unpickles(meta: Mapping[str, Any]) -> bool:
    """Never: ONNX is a protobuf."""
    return False


def load(files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Any:
    """An ONNX Runtime session on the CPU."""
    import onnxruntime

    return onnxruntime.InferenceSession(files[FILE], providers=["CPUExecutionProvider"])


def runtime(model: Any, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Any:
    """The object predictions run on for an in-memory model: a session over its bytes."""
    return load(files, meta)


def _array(values: Any, onnx_type: str) -> Any:
    import numpy as np

    dtype = _NUMPY_TYPES.get(onnx_type, "float32")
    if dtype == "object":
        import pandas as pd

        array = np.asarray(values, dtype=object)
        return np.where(pd.isna(array), "", array.astype(str)).astype(object)
    return np.ascontiguousarray(np.asarray(values).astype(dtype, copy=False))


def feed(session: Any, data: Any) -> dict[str, Any]:
    """The session's inputs from ``data``: one matrix, or one ``[n, 1]`` array per column.

    Example:
        >>> # session.run(None, feed(session, frame))
    """
    inputs = session.get_inputs()
    is_frame = hasattr(data, "columns")
    if len(inputs) == 1:
        values = data.to_numpy() if is_frame else data
        return {inputs[0].name: _array(values, inputs[0].type)}
    if not is_frame:
        raise SchemaMismatchError(
            f"The ONNX model takes {len(inputs)} named inputs; pass a DataFrame with those columns."
        )
    missing = [i.name for i in inputs if i.name not in data.columns]
    if missing:
        raise SchemaMismatchError(f"The input lacks column '{missing[0]}' of the ONNX model.")
    return {i.name: _array(data[i.name].to_numpy().reshape(-1, 1), i.type) for i in inputs}


def predict(session: Any, data: Any, meta: Mapping[str, Any]) -> Any:
    """Run the session and return one output (the first, or ``meta["output"]``)."""
    wanted = meta.get("output")
    names = [wanted] if wanted else [session.get_outputs()[0].name]
    return session.run(names, feed(session, data))[0]


def feature_names(model: Any) -> list[str] | None:
    """The graph's input names when it takes one input per column."""
    names = [i.name for i in model.graph.input]
    return names if len(names) > 1 else None
