"""Converting registered models to ONNX, and the graph edits optimization needs.

Each supported flavor has a converter: scikit-learn through skl2onnx, LightGBM and XGBoost
through onnxmltools, PyTorch through ``torch.onnx.export`` (the TorchScript-based exporter,
which needs no extra packages). The converted graph is then shaped so that the ONNX version
answers ``predict`` like the original:

* tabular models take one float tensor ``[N, F]`` with the columns in the signature's order,
  which the ONNX flavor fills from a DataFrame; a LightGBM model with categorical columns
  takes one input per column instead, its string columns mapped to LightGBM's category codes
  inside the graph (a ``LabelEncoder``), so the same DataFrame request works;
* the first output is what the original flavor's ``predict`` returns: class labels for
  scikit-learn style classifiers, the positive class's probability for a binary LightGBM or
  XGBoost booster, the value (same shape) for regressors and networks.

:func:`quantize_int8` applies ONNX Runtime's dynamic int8 quantization, after rewriting
``Gemm`` nodes with constant weights as ``MatMul`` + ``Add`` (ONNX Runtime's dynamic
quantizer only quantizes ``MatMul``, and the PyTorch exporter writes every ``Linear`` as a
``Gemm``). The first layer, which reads the raw inputs, stays in float.

Example:
    >>> # converted = convert(ws.models.load("delay:3"), prepared_frame, reference_predictions)
    >>> # converted.model.graph.output[0].name
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError, PlinthError

if TYPE_CHECKING:
    from plinth.registry.records import LoadedModel

#: The name of the float ``[N, F]`` tensor every tabular converter takes.
INPUT = "input"
#: The name of the output added when the original's prediction is one column of an output.
PREDICTION = "prediction"
#: Opsets: skl2onnx and the PyTorch exporter write opset 17; onnxmltools supports 15.
SKLEARN_OPSET = {"": 17, "ai.onnx.ml": 3}
TORCH_OPSET = 17
ONNXMLTOOLS_OPSET = 15
#: Operators ONNX Runtime's dynamic quantizer gives int8 weights (when they have constant
#: float weights).
_QUANTIZABLE = {"MatMul", "Conv", "Attention", "LSTM", "Gather", "EmbedLayerNormalization"}
_CONVERTERS = {
    "sklearn": "skl2onnx",
    "lightgbm": "onnxmltools",
    "xgboost": "onnxmltools",
    "pytorch": "torch.onnx",
}


@dataclass(frozen=True)
class Converted:
    """A model converted to ONNX, and what its outputs mean.

    ``predicts`` says what the first output holds, matching the original's ``predict``:
    ``"label"`` (class labels), ``"probability"`` (class probabilities, or the positive
    class's for a binary booster) or ``"value"`` (regression values, a network's output).
    ``probabilities`` names the output comparable with the original's ``predict_proba``,
    when the original has one.

    Example:
        >>> # Converted(model_proto, "label", "probabilities", "skl2onnx 1.20.0")
    """

    model: Any
    predicts: str
    probabilities: str | None
    converter: str


def converter_of(flavor: str) -> str:
    """The library that converts a flavor to ONNX, with its version; ConfigError if none.

    Example:
        >>> converter_of("sklearn").split()[0]
        'skl2onnx'
    """
    import importlib.metadata

    name = _CONVERTERS.get(flavor)
    if name is None:
        if flavor == "onnx":
            raise ConfigError(
                "The model is already an ONNX model, so there is nothing to convert.",
                hint="Optimize the version it was converted from; add --quantize dynamic "
                "for int8 weights.",
            )
        raise ConfigError(
            f"Models of flavor '{flavor}' cannot be converted to ONNX.",
            hint="Supported: " + ", ".join(sorted(_CONVERTERS)) + ".",
        )
    package = "torch" if name == "torch.onnx" else name
    try:
        return f"{name} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"Converting a {flavor} model to ONNX needs the '{package}' package.",
            hint="Install Plinth's ONNX extra: pip install 'plinth-ai[onnx]'.",
        ) from exc


def _is_booster(model: Any) -> bool:
    return type(model).__name__ == "Booster"


def _categorical_columns(frame: Any) -> list[str]:
    """Columns LightGBM treats as categorical: pandas categories and strings."""
    import pandas as pd
    from pandas.api import types as t

    return [
        str(c)
        for c, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.CategoricalDtype)
        or (t.is_string_dtype(dtype) and not t.is_object_dtype(dtype))
        or (t.is_object_dtype(dtype) and t.infer_dtype(frame[c], skipna=True) == "string")
    ]


def numeric_matrix(prepared: Any) -> Any:
    """The prepared inputs as a float32 array; ConfigError naming a non-numeric column.

    Example:
        >>> import pandas as pd
        >>> numeric_matrix(pd.DataFrame({"a": [1], "b": [0.5]})).dtype.name
        'float32'
    """
    import numpy as np
    import pandas as pd
    from pandas.api import types as t

    if hasattr(prepared, "columns"):
        bad = [
            str(c)
            for c, dtype in prepared.dtypes.items()
            if not (t.is_numeric_dtype(dtype) or t.is_bool_dtype(dtype))
            or isinstance(dtype, pd.CategoricalDtype)
        ]
        if bad:
            raise ConfigError(
                f"Column '{bad[0]}' is {prepared[bad[0]].dtype}, but only numeric and "
                "boolean columns can be converted to ONNX for this model.",
                hint="Encode the column as numbers before training (one-hot or codes); only "
                "LightGBM models can keep categorical columns.",
            )
        return prepared.to_numpy(dtype=np.float32)
    array = np.asarray(prepared)
    if array.dtype.kind not in "fiub":
        raise ConfigError(
            f"The model takes an array of dtype {array.dtype}, which cannot be fed to ONNX.",
            hint="Only numeric inputs can be converted.",
        )
    return np.ascontiguousarray(array, dtype=np.float32)


# -- converters ------------------------------------------------------------------------------


def _sklearn(model: Any, features: int) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.base import is_classifier

    options = {"zipmap": False} if is_classifier(model) else None
    return convert_sklearn(
        model,
        initial_types=[(INPUT, FloatTensorType([None, features]))],
        options=options,
        target_opset=SKLEARN_OPSET,
    )


def _lightgbm(model: Any, features: int) -> Any:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    return onnxmltools.convert_lightgbm(
        model,
        initial_types=[(INPUT, FloatTensorType([None, features]))],
        zipmap=False,
        target_opset=ONNXMLTOOLS_OPSET,
    )


def _xgboost(model: Any, features: int) -> Any:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    # onnxmltools reads features by their default names f0, f1 ...: drop the real names on a
    # copy (the order, which is what the ONNX input follows, stays the same).
    if _is_booster(model):
        clone = model.copy()
        clone.feature_names = None
        clone.feature_types = None
    else:
        clone = copy.deepcopy(model)
        booster = clone.get_booster()
        booster.feature_names = None
        booster.feature_types = None
    return onnxmltools.convert_xgboost(
        clone,
        initial_types=[(INPUT, FloatTensorType([None, features]))],
        target_opset=ONNXMLTOOLS_OPSET,
    )


def _pytorch(model: Any, sample: Any) -> Any:
    import onnx
    import torch

    example = torch.from_numpy(sample[: min(len(sample), 2)].copy())
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=[INPUT],
            output_names=["output"],
            dynamic_axes={INPUT: {0: "N"}, "output": {0: "N"}},
            opset_version=TORCH_OPSET,
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def _categories(model: Any, columns: list[str]) -> dict[str, list[str]]:
    """LightGBM's categories per categorical column, in the order it codes them."""
    booster = model if _is_booster(model) else model.booster_
    stored = getattr(booster, "pandas_categorical", None) or []
    if len(stored) != len(columns):
        raise ConfigError(
            f"The LightGBM model records {len(stored)} pandas categorical column(s), but the "
            f"input has {len(columns)} ({', '.join(columns)}).",
            hint="Optimize a model trained on the same columns as its signature.",
        )
    out: dict[str, list[str]] = {}
    for column, values in zip(columns, stored, strict=True):
        if not all(isinstance(v, str) for v in values):
            raise ConfigError(
                f"Categorical column '{column}' has non-string categories, which the ONNX "
                "version cannot map to LightGBM's codes.",
                hint="Train on string categories, or encode the column as numbers.",
            )
        out[column] = list(values)
    return out


def convert(loaded: LoadedModel, prepared: Any, reference: Any) -> Converted:
    """Convert a loaded model to ONNX, its first output shaped like ``reference``.

    ``prepared`` is validation input as the model takes it (``LoadedModel.prepare``);
    ``reference`` is the original's ``predict`` output on it. A converter's failure becomes a
    :class:`~plinth.errors.ConfigError` naming the converter.

    Example:
        >>> # convert(loaded, loaded.prepare(frame), loaded.predict(frame)).predicts
        >>> # 'probability'
    """
    import numpy as np

    converter = converter_of(loaded.flavor)
    raw = loaded.raw
    categories: dict[str, list[str]] = {}
    columns = [str(c) for c in prepared.columns] if hasattr(prepared, "columns") else []
    if loaded.flavor == "lightgbm" and columns:
        categorical = _categorical_columns(prepared)
        if categorical:
            categories = _categories(raw, categorical)
            prepared = prepared.drop(columns=categorical)
    matrix = numeric_matrix(prepared)
    features = matrix.shape[1] + len(categories) if matrix.ndim == 2 else 0
    if loaded.flavor != "pytorch" and matrix.ndim != 2:
        raise ConfigError(
            f"A {loaded.flavor} model must take a table, not an array of shape "
            f"{list(matrix.shape)}.",
            hint="Register the model with a DataFrame example.",
        )
    try:
        if loaded.flavor == "sklearn":
            model = _sklearn(raw, features)
        elif loaded.flavor == "lightgbm":
            model = _lightgbm(raw, features)
        elif loaded.flavor == "xgboost":
            model = _xgboost(raw, features)
        else:
            model = _pytorch(raw, matrix)
    except PlinthError:
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(
            f"{converter} could not convert the {loaded.flavor} model {loaded.label} "
            f"({type(raw).__name__}): {type(exc).__name__}: {message[:300]}",
            hint="Only models whose every step has an ONNX converter can be optimized; "
            "serve this version as it is.",
        ) from exc
    reference = np.asarray(reference)
    names = [o.name for o in model.graph.output]
    if loaded.flavor == "pytorch":
        predicts, probabilities = "value", None
    elif "probabilities" in names and "label" in names:
        if _is_booster(raw):
            predicts, probabilities = "probability", None
            if reference.ndim == 1:
                _add_prediction(model, "probabilities", column=1)
            else:
                _move_first(model, "probabilities")
        else:
            predicts = "label"
            probabilities = "probabilities" if hasattr(raw, "predict_proba") else None
            _move_first(model, "label")
    else:
        predicts, probabilities = "value", None
        first = model.graph.output[0]
        if reference.ndim == 1 and len(first.type.tensor_type.shape.dim) == 2:
            _add_prediction(model, first.name, column=None)
    if categories:
        _column_inputs(model, columns, categories)
    relax_batch_dim(model)
    return Converted(model, predicts, probabilities, converter)


# -- graph edits -----------------------------------------------------------------------------


def _output(model: Any, name: str) -> Any:
    return next(o for o in model.graph.output if o.name == name)


def _move_first(model: Any, name: str) -> None:
    outputs = list(model.graph.output)
    ordered = [o for o in outputs if o.name == name] + [o for o in outputs if o.name != name]
    del model.graph.output[:]
    model.graph.output.extend(ordered)


def _add_prediction(model: Any, source: str, *, column: int | None) -> None:
    """Add output :data:`PREDICTION` (first): column ``column`` of ``source``, or
    ``source`` flattened to one dimension."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    elem_type = _output(model, source).type.tensor_type.elem_type
    if column is not None:
        index = numpy_helper.from_array(np.array(column, dtype=np.int64), "plinth_column")
        graph.initializer.append(index)
        node = helper.make_node("Gather", [source, index.name], [PREDICTION], axis=1)
    else:
        shape = numpy_helper.from_array(np.array([-1], dtype=np.int64), "plinth_flat")
        graph.initializer.append(shape)
        node = helper.make_node("Reshape", [source, shape.name], [PREDICTION])
    graph.node.append(node)
    graph.output.insert(0, helper.make_tensor_value_info(PREDICTION, elem_type, ["N"]))


def _column_inputs(model: Any, columns: list[str], categories: dict[str, list[str]]) -> None:
    """Replace the ``[N, F]`` input by one ``[N, 1]`` input per column; string columns are
    mapped to LightGBM's category codes (unknown or missing values become NaN, as LightGBM
    treats them)."""
    from onnx import TensorProto, helper

    graph = model.graph
    taken = {n for node in graph.node for n in (*node.input, *node.output)}
    taken |= {i.name for i in graph.initializer} | {o.name for o in graph.output}
    clash = [c for c in columns if c in taken and c != INPUT]
    if clash:
        raise ConfigError(
            f"Column '{clash[0]}' has the name of a tensor of the converted graph.",
            hint="Rename the column before training to optimize this model.",
        )
    inputs, nodes, parts = [], [], []
    for position, column in enumerate(columns):
        if column not in categories:
            inputs.append(helper.make_tensor_value_info(column, TensorProto.FLOAT, ["N", 1]))
            parts.append(column)
            continue
        inputs.append(helper.make_tensor_value_info(column, TensorProto.STRING, ["N", 1]))
        code = f"plinth_code_{position}"
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [column],
                [code],
                domain="ai.onnx.ml",
                keys_strings=categories[column],
                values_floats=[float(i) for i in range(len(categories[column]))],
                default_float=float("nan"),
            )
        )
        parts.append(code)
    if INPUT in columns:
        raise ConfigError(
            f"A column is named '{INPUT}', the name of the converted graph's feature tensor.",
            hint="Rename the column before training to optimize this model.",
        )
    nodes.append(helper.make_node("Concat", parts, [INPUT], axis=1))
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *existing])
    del graph.input[:]
    graph.input.extend(inputs)
    for opset in model.opset_import:
        if opset.domain == "ai.onnx.ml" and opset.version < 2:
            opset.version = 2


def relax_batch_dim(model: Any) -> None:
    """Mark the first dimension of every graph input and output as the variable ``N``.

    Example:
        >>> # relax_batch_dim(model_proto)
    """
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) >= 1:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"


def gemm_to_matmul(model: Any) -> Any:
    """A copy of ``model`` with each ``Gemm`` of constant weights as ``MatMul`` + ``Add``.

    Only plain ``Gemm`` nodes (``alpha = beta = 1``, ``A`` not transposed) are rewritten; the
    weights are stored transposed where ``transB`` was set. Outputs are unchanged.

    Example:
        >>> # [n.op_type for n in gemm_to_matmul(model).graph.node]
    """
    import numpy as np
    from onnx import helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            node.op_type == "Gemm"
            and node.input[1] in weights
            and not attrs.get("transA", 0)
            and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0
        )
        if not plain:
            nodes.append(node)
            continue
        matrix = numpy_helper.to_array(weights[node.input[1]])
        if attrs.get("transB", 0):
            matrix = matrix.T
        name = f"{node.input[1]}_matmul"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(matrix), name))
        target, label = node.output[0], node.name or node.output[0]
        if len(node.input) > 2 and node.input[2]:
            middle = f"{target}_matmul"
            nodes.append(helper.make_node("MatMul", [node.input[0], name], [middle],
                                          name=f"{label}_MatMul"))  # fmt: skip
            nodes.append(
                helper.make_node("Add", [middle, node.input[2]], [target], name=f"{label}_Add")
            )
        else:
            nodes.append(
                helper.make_node("MatMul", [node.input[0], name], [target], name=f"{label}_MatMul")
            )
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop the quantizer's advice to pre-process, logged on the root logger."""

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "pre-processing" not in record.getMessage()

        def __hash__(self) -> int:
            return id(self)

    drop = _Drop()
    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization of the weights (``QInt8``), with ONNX Runtime.

    Activations are quantized on the fly at run time. The first matrix product (the layer
    reading the model's inputs) stays in float when there are others: its inputs' ranges
    differ per column, so quantizing them costs most of the accuracy, for few weights. A
    model without matrix products (tree ensembles, linear classifiers of ``ai.onnx.ml``)
    comes back unchanged.

    Example:
        >>> # smaller = quantize_int8(model_proto)
    """
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rewritten = gemm_to_matmul(model)
    weights = {i.name for i in rewritten.graph.initializer if i.data_type == TensorProto.FLOAT}
    candidates = [
        node for node in rewritten.graph.node
        if node.op_type in _QUANTIZABLE and node.domain in ("", "ai.onnx")
        and weights & {*node.input}
    ]  # fmt: skip
    if not candidates:
        return model
    # The first layer reads the raw inputs, whose ranges differ per column: quantizing its
    # activations costs most of the accuracy and its weights are few. It stays in float.
    keep = [candidates[0].name] if len(candidates) > 1 and candidates[0].name else []
    with tempfile.TemporaryDirectory(prefix="plinth-quantize-") as folder, _quiet_quantizer():
        path = Path(folder) / "model.int8.onnx"
        try:
            quantize_dynamic(rewritten, path, weight_type=QuantType.QInt8, nodes_to_exclude=keep)
        except Exception as exc:
            raise ConfigError(
                f"ONNX Runtime could not quantize the model: {type(exc).__name__}: {exc}",
                hint="Optimize without --quantize.",
            ) from exc
        return onnx.load(str(path))


def int8_tensors(model: Any) -> int:
    """How many constant tensors of the graph are 8-bit integers (quantized weights).

    Example:
        >>> # int8_tensors(quantize_int8(model_proto))
    """
    from onnx import TensorProto

    return sum(
        1 for i in model.graph.initializer if i.data_type in (TensorProto.INT8, TensorProto.UINT8)
    )


def session(data: bytes, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session over serialized model bytes, on ``threads`` threads.

    Example:
        >>> # session(model_proto.SerializeToString()).get_inputs()[0].name
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConfigError(
            f"ONNX Runtime cannot run the converted model: {type(exc).__name__}: {exc}",
            hint="The converter wrote a graph this ONNX Runtime does not support; serve the "
            "original version.",
        ) from exc
