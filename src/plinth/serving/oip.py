"""The Open Inference Protocol (KServe v2) REST codec: tensors in, tensors out.

A tabular model takes one input tensor per column (shape ``[N]`` or ``[N, 1]``), named as the
signature's columns (or, when the model has a feature service, its entity keys); one
``[N, F]`` tensor whose ``F`` matches the model's columns is read in signature order. A
tensor model takes its single tensor as it is. Tensors may come as JSON ``data`` or in the
binary tensor extension (``Inference-Header-Content-Length``) that Triton's clients send by
default; outputs are returned in JSON, or binary when the request asks for it.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from plinth.errors import SchemaMismatchError
from plinth.serving.inputs import Columns

#: OIP datatype → NumPy dtype (BYTES are handled apart).
DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
_KIND_TYPES = {
    "float": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "string": "BYTES",
    "categorical": "BYTES",
    "datetime": "BYTES",
    "date": "BYTES",
}
HEADER = "inference-header-content-length"


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype of a NumPy array.

    Example:
        >>> datatype_of(np.zeros(2, np.float32))
        'FP32'
    """
    for name, dtype in DATATYPES.items():
        if array.dtype == np.dtype(dtype):
            return name
    return "BYTES"


def kind_datatype(kind: str) -> str:
    """The OIP datatype announced for a signature column kind.

    Example:
        >>> kind_datatype("categorical")
        'BYTES'
    """
    return _KIND_TYPES.get(kind, "BYTES")


def _bytes_elements(raw: bytes) -> list[str]:
    out = []
    offset = 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        out.append(raw[offset : offset + length].decode("utf-8"))
        offset += length
    return out


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        flat: list[Any] = []
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                flat.append(item)
        return flat
    return data if isinstance(data, list) else [data]


def _tensor(spec: dict[str, Any], binary: memoryview | None, offset: int) -> tuple[Any, int, int]:
    """Values (flat list or array), the row count, and the new binary offset of one input."""
    name = spec.get("name")
    shape = spec.get("shape")
    datatype = spec.get("datatype")
    if not isinstance(name, str) or not isinstance(shape, list) or not isinstance(datatype, str):
        raise SchemaMismatchError(
            "An input lacks 'name', 'shape' or 'datatype'.",
            hint="Each input is {name, shape, datatype, data}.",
        )
    if datatype not in DATATYPES and datatype != "BYTES":
        raise SchemaMismatchError(f"Input '{name}' has the unknown datatype '{datatype}'.")
    size = (spec.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if binary is None or offset + int(size) > len(binary):
            raise SchemaMismatchError(f"Input '{name}' announces more binary data than was sent.")
        raw = bytes(binary[offset : offset + int(size)])
        offset += int(size)
        if datatype == "BYTES":
            values: Any = _bytes_elements(raw)
        else:
            values = np.frombuffer(raw, dtype=DATATYPES[datatype]).tolist()
    else:
        if "data" not in spec:
            raise SchemaMismatchError(f"Input '{name}' has no 'data'.")
        values = _flatten(spec["data"])
    expected = int(np.prod(shape)) if shape else 1
    if len(values) != expected:
        raise SchemaMismatchError(
            f"Input '{name}' has {len(values)} values but its shape {shape} needs {expected}.",
            hint="Make shape and data agree.",
        )
    rows = int(shape[0]) if shape else 1
    return (values, shape), rows, offset


def decode_request(
    body: dict[str, Any],
    binary: memoryview | None,
    input_names: list[str] | None,
    accepted: set[str],
) -> tuple[Columns, int]:
    """The columns and row count of an OIP infer request.

    ``input_names`` are the signature's columns (``None`` for a tensor model), ``accepted``
    every input name the model takes (columns and entity keys).

    Example:
        >>> decode_request({"inputs": [{"name": "a", "shape": [2], "datatype": "FP64",
        ...                 "data": [1.0, 2.0]}]}, None, ["a"], {"a"})
        ({'a': [1.0, 2.0]}, 2)
    """
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise SchemaMismatchError(
            "The request has no 'inputs'.", hint="Send {inputs: [{name, shape, datatype, data}]}."
        )
    offset = 0
    decoded: dict[str, tuple[Any, list[int]]] = {}
    rows: set[int] = set()
    for spec in inputs:
        if not isinstance(spec, dict):
            raise SchemaMismatchError("An input is not a JSON object.")
        (values, shape), n, offset = _tensor(spec, binary, offset)
        decoded[spec["name"]] = (values, shape)
        rows.add(n)
    if input_names is None:
        if len(decoded) != 1:
            raise SchemaMismatchError("The model takes one tensor input.")
        values, shape = next(iter(decoded.values()))
        return {"inputs": np.asarray(values).reshape(shape).tolist()}, next(iter(rows))
    if len(decoded) == 1:
        name, (values, shape) = next(iter(decoded.items()))
        if name not in accepted and len(shape) == 2 and shape[1] == len(input_names):
            width = shape[1]
            return {column: values[j::width] for j, column in enumerate(input_names)}, int(shape[0])
    if len(rows) != 1:
        raise SchemaMismatchError(
            "The inputs have different row counts.", hint="Give every input the same first dim."
        )
    columns: Columns = {}
    for name, (values, shape) in decoded.items():
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise SchemaMismatchError(
                f"Input '{name}' has shape {shape}; a column input is [N] or [N, 1].",
            )
        columns[name] = values
    return columns, rows.pop()


def encode_outputs(
    predictions: np.ndarray, requested: list[dict[str, Any]] | None
) -> tuple[list[dict[str, Any]], bytes]:
    """The ``outputs`` of an infer response, and binary data when the request asked for it.

    Example:
        >>> encode_outputs(np.array([0.5]), None)[0][0]["data"]
        [0.5]
    """
    array = np.asarray(predictions)
    datatype = datatype_of(array)
    binary = any((o.get("parameters") or {}).get("binary_data") for o in requested or [] if o)
    output: dict[str, Any] = {
        "name": "prediction",
        "datatype": datatype,
        "shape": list(array.shape),
    }
    if binary:
        if datatype == "BYTES":
            raw = b"".join(
                struct.pack("<I", len(b)) + b
                for b in (str(v).encode("utf-8") for v in array.ravel())
            )
        else:
            raw = np.ascontiguousarray(array).tobytes()
        output["parameters"] = {"binary_data_size": len(raw)}
        return [output], raw
    output["data"] = (
        array.ravel().tolist() if datatype != "BYTES" else [str(v) for v in array.ravel()]
    )
    return [output], b""
