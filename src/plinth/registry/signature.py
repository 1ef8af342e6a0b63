"""Model signatures: the input columns (or tensor) a model takes and the output it returns.

A signature is inferred from an input example or the training set (pandas or Arrow), stored as
JSON with the model version, and checked on every prediction: a missing, extra or mistyped
column raises :class:`~plinth.errors.SchemaMismatchError` naming the column.

Column types are compared by kind: ``boolean``, ``integer``, ``float``, ``string``,
``categorical``, ``datetime``, ``date``, ``binary`` or ``object`` (anything). Two widenings
are accepted and applied: an integer column where a float is expected (cast to the float
type), and a string column where a categorical is expected (or the other way round; strings
become a pandas category). A column whose values are all null fits any kind.

Example:
    >>> import pandas as pd
    >>> sig = infer_signature(pd.DataFrame({"hour": [5, 6], "temp": [40.1, 39.0]}))
    >>> [(c.name, c.type) for c in sig.inputs]
    [('hour', 'integer'), ('temp', 'float')]
    >>> sig.prepare({"temp": [41.0], "hour": [7]}).columns.tolist()
    ['hour', 'temp']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plinth.errors import ConfigError, SchemaMismatchError

KINDS = (
    "boolean",
    "integer",
    "float",
    "string",
    "categorical",
    "datetime",
    "date",
    "binary",
    "object",
)
#: Kinds accepted for each expected kind besides itself.
_WIDENS = {
    "float": {"integer"},
    "categorical": {"string"},
    "string": {"categorical"},
}
_FLOAT_DTYPES = {"float32": "float32", "float": "float32", "halffloat": "float16"}
_TENSOR_KINDS = {"f": "float", "i": "integer", "u": "integer", "b": "boolean"}


@dataclass(frozen=True)
class ColumnSpec:
    """One input or output column: its name, its kind (see :data:`KINDS`) and exact dtype."""

    name: str
    type: str
    dtype: str

    def to_dict(self) -> dict[str, str]:
        """The column as JSON-ready data."""
        return {"name": self.name, "type": self.type, "dtype": self.dtype}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor (NumPy array): its dtype and shape, ``-1`` where a dimension may vary."""

    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """The tensor as JSON-ready data."""
        return {"type": "tensor", "dtype": self.dtype, "shape": list(self.shape)}

    def describe(self) -> str:
        """A short text such as ``float32[-1, 4]``."""
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


Spec = tuple[ColumnSpec, ...] | TensorSpec


def _spec_to_dict(spec: Spec) -> dict[str, Any]:
    if isinstance(spec, TensorSpec):
        return spec.to_dict()
    return {"type": "columns", "columns": [c.to_dict() for c in spec]}


def _spec_from_dict(data: Mapping[str, Any]) -> Spec:
    if data.get("type") == "tensor":
        return TensorSpec(str(data["dtype"]), tuple(int(d) for d in data["shape"]))
    if data.get("type") == "columns":
        return tuple(
            ColumnSpec(str(c["name"]), str(c["type"]), str(c.get("dtype", c["type"])))
            for c in data["columns"]
        )
    raise ConfigError(
        f"A signature part of type {data.get('type')!r} is not understood.",
        hint="Use {'type': 'columns', 'columns': [...]} or {'type': 'tensor', ...}.",
    )


@dataclass(frozen=True)
class Signature:
    """What a model takes (columns or a tensor) and what it returns (if known).

    Example:
        >>> sig = Signature((ColumnSpec("x", "float", "float64"),))
        >>> Signature.from_dict(sig.to_dict()) == sig
        True
    """

    inputs: Spec
    outputs: Spec | None = None

    @property
    def columns(self) -> list[str] | None:
        """The input column names in order, or ``None`` for a tensor input."""
        if isinstance(self.inputs, TensorSpec):
            return None
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        """The signature as JSON-ready data (the form stored in the catalog)."""
        return {
            "inputs": _spec_to_dict(self.inputs),
            "outputs": None if self.outputs is None else _spec_to_dict(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Rebuild a signature from its JSON form.

        Example:
            >>> Signature.from_dict({"inputs": {"type": "tensor", "dtype": "float32",
            ...                                 "shape": [-1, 4]}}).columns is None
            True
        """
        if not isinstance(data, Mapping) or "inputs" not in data:
            raise ConfigError(
                "A signature needs an 'inputs' entry.",
                hint="Pass signature='auto', None, a Signature, or its to_dict() form.",
            )
        outputs = data.get("outputs")
        return cls(_spec_from_dict(data["inputs"]), _spec_from_dict(outputs) if outputs else None)

    def describe_inputs(self) -> list[str]:
        """One short line per input: ``name: kind (dtype)``, or the tensor's shape."""
        if isinstance(self.inputs, TensorSpec):
            return [f"tensor {self.inputs.describe()}"]
        return [f"{c.name}: {c.type} ({c.dtype})" for c in self.inputs]

    def describe_outputs(self) -> list[str]:
        """One short line per output (empty when the output is not known)."""
        if self.outputs is None:
            return []
        if isinstance(self.outputs, TensorSpec):
            return [f"tensor {self.outputs.describe()}"]
        return [f"{c.name}: {c.type} ({c.dtype})" for c in self.outputs]

    def prepare(self, data: Any) -> Any:
        """Check ``data`` against the inputs and return it ready for the model.

        Columns come back in the signature's order with the accepted widenings applied;
        a tensor comes back as a NumPy array of the signature's dtype.

        Example:
            >>> import pandas as pd
            >>> sig = infer_signature(pd.DataFrame({"a": [1.5]}))
            >>> sig.prepare(pd.DataFrame({"a": [2]}))["a"].dtype.name
            'float64'
        """
        if isinstance(self.inputs, TensorSpec):
            return _prepare_tensor(self.inputs, data)
        return _prepare_columns(self.inputs, to_frame(data, [c.name for c in self.inputs]))


# -- kinds ---------------------------------------------------------------------------------


def arrow_kind(dtype: Any) -> str:
    """The kind of an Arrow type.

    Example:
        >>> import pyarrow as pa
        >>> arrow_kind(pa.int32()), arrow_kind(pa.dictionary(pa.int8(), pa.string()))
        ('integer', 'categorical')
    """
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(dtype):
        return "categorical"
    if t.is_boolean(dtype):
        return "boolean"
    if t.is_integer(dtype):
        return "integer"
    if t.is_floating(dtype) or t.is_decimal(dtype):
        return "float"
    if t.is_string(dtype) or t.is_large_string(dtype) or t.is_string_view(dtype):
        return "string"
    if t.is_timestamp(dtype):
        return "datetime"
    if t.is_date(dtype):
        return "date"
    if t.is_binary(dtype) or t.is_large_binary(dtype) or t.is_fixed_size_binary(dtype):
        return "binary"
    if t.is_null(dtype):
        return "empty"
    return "object"


_INFERRED = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
    "date": "date",
    "datetime": "datetime",
    "datetime64": "datetime",
    "bytes": "binary",
    "empty": "empty",
}


def dtype_kind(dtype: Any) -> str | None:
    """The kind of a pandas dtype, or ``None`` for ``object`` (judged by the values).

    Example:
        >>> import numpy as np
        >>> dtype_kind(np.dtype("int32")), dtype_kind(np.dtype(object))
        ('integer', None)
    """
    import pandas as pd
    from pandas.api import types as t

    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if t.is_bool_dtype(dtype):
        return "boolean"
    if t.is_integer_dtype(dtype):
        return "integer"
    if t.is_float_dtype(dtype):
        return "float"
    if t.is_datetime64_any_dtype(dtype):
        return "datetime"
    if t.is_object_dtype(dtype):
        return None
    if t.is_string_dtype(dtype):
        return "string"
    return "object"


def pandas_kind(series: Any) -> str:
    """The kind of a pandas column (object columns are judged by their values).

    Example:
        >>> import pandas as pd
        >>> pandas_kind(pd.Series(["a", None])), pandas_kind(pd.Series([1, 2]))
        ('string', 'integer')
    """
    kind = dtype_kind(series.dtype)
    if kind is not None:
        return kind
    from pandas.api import types as t

    return _INFERRED.get(t.infer_dtype(series, skipna=True), "object")


def _fits(expected: str, actual: str) -> bool:
    return (
        expected == actual
        or expected == "object"
        or actual == "empty"
        or actual in _WIDENS.get(expected, ())
    )


# -- inference -----------------------------------------------------------------------------


def _is_frame(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns")


def _is_arrow(data: Any) -> bool:
    return type(data).__module__.startswith("pyarrow") and hasattr(data, "schema")


def _columns_of(data: Any) -> tuple[ColumnSpec, ...] | None:
    if _is_frame(data):
        names = [str(c) for c in data.columns]
        if len(set(names)) != len(names):
            raise SchemaMismatchError("The data has duplicate column names.")
        return tuple(
            ColumnSpec(str(name), _known(pandas_kind(data[name])), str(data[name].dtype))
            for name in data.columns
        )
    if _is_arrow(data):
        return tuple(
            ColumnSpec(f.name, _known(arrow_kind(f.type)), str(f.type)) for f in data.schema
        )
    if type(data).__module__.startswith("polars"):
        return _columns_of(data.to_arrow())
    return None


def _known(kind: str) -> str:
    return "object" if kind == "empty" else kind


def _tensor_of(data: Any, *, output: bool = False) -> TensorSpec:
    import numpy as np

    array = data if isinstance(data, np.ndarray) else np.asarray(data)
    if output and array.ndim == 0:
        array = array.reshape(1)
    if array.dtype.kind not in _TENSOR_KINDS and not output:
        raise ConfigError(
            f"Cannot describe an array of dtype {array.dtype} in a signature.",
            hint="Pass numbers (a NumPy array or a DataFrame), or signature=None.",
        )
    return TensorSpec(str(array.dtype), (-1, *array.shape[1:]))


def describe_data(data: Any, *, output: bool = False) -> Spec:
    """Describe data as columns (pandas, Arrow, polars) or a tensor (anything array-like).

    ``output=True`` describes a model's output, which may be an array of any dtype (class
    labels as strings, say); inputs must be numeric arrays or tables.

    Example:
        >>> import numpy as np
        >>> describe_data(np.zeros((3, 4), dtype="float32"))
        TensorSpec(dtype='float32', shape=(-1, 4))
    """
    columns = _columns_of(data)
    if columns is not None:
        return columns
    if type(data).__module__.startswith("pandas"):  # a Series
        return (ColumnSpec(str(data.name or "prediction"), pandas_kind(data), str(data.dtype)),)
    return _tensor_of(data, output=output)


def infer_signature(inputs: Any, outputs: Any = None) -> Signature:
    """Infer a signature from input data and, optionally, the model's output on it.

    Example:
        >>> import numpy as np
        >>> infer_signature(np.ones((2, 3), "float32"), np.ones(2)).to_dict()["outputs"]
        {'type': 'tensor', 'dtype': 'float64', 'shape': [-1]}
    """
    out = None if outputs is None else describe_data(outputs, output=True)
    return Signature(describe_data(inputs), out)


# -- preparing inputs ----------------------------------------------------------------------


def to_frame(data: Any, names: Sequence[str] | None = None) -> Any:
    """Turn pandas, Arrow, polars, a dict of columns, a list of rows or a 2-D array into a
    pandas DataFrame (an array's columns are named by ``names``, in order).

    Example:
        >>> to_frame({"a": 1, "b": 2}).to_dict("records")
        [{'a': 1, 'b': 2}]
    """
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if _is_arrow(data):
        return data.to_pandas()
    if type(data).__module__.startswith("polars"):
        return data.to_pandas()
    if isinstance(data, Mapping):
        if all(np.ndim(v) == 0 for v in data.values()):
            return pd.DataFrame([dict(data)])
        return pd.DataFrame(dict(data))
    if isinstance(data, list) and (not data or isinstance(data[0], Mapping)):
        return pd.DataFrame(data)
    if isinstance(data, np.ndarray) and names is not None:
        array = data.reshape(1, -1) if data.ndim == 1 else data
        if array.ndim != 2 or array.shape[1] != len(names):
            raise SchemaMismatchError(
                f"An array of shape {data.shape} cannot be read as the model's "
                f"{len(names)} input columns.",
                hint=f"Pass a DataFrame with the columns {', '.join(names)}.",
            )
        return pd.DataFrame(array, columns=list(names))
    raise SchemaMismatchError(
        f"Cannot read the model's input from a {type(data).__name__}.",
        hint="Pass a pandas DataFrame, an Arrow table, a dict of columns or a list of rows.",
    )


def _prepare_columns(specs: Sequence[ColumnSpec], frame: Any) -> Any:
    names = [c.name for c in specs]
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.rename(columns=str)
    present = [str(c) for c in frame.columns]
    if len(set(present)) != len(present):
        duplicate = next(c for c in present if present.count(c) > 1)
        raise SchemaMismatchError(f"The input has the column '{duplicate}' more than once.")
    missing = [n for n in names if n not in present]
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:6])})" if missing[1:] else ""
        raise SchemaMismatchError(
            f"The input lacks column '{missing[0]}', which the model's signature requires{more}.",
            hint=f"The model takes the columns: {', '.join(names)}.",
        )
    extra = [c for c in present if c not in set(names)]
    if extra:
        raise SchemaMismatchError(
            f"The input has column '{extra[0]}', which is not in the model's signature"
            + (f" (and {len(extra) - 1} more)." if extra[1:] else "."),
            hint=f"Drop it; the model takes the columns: {', '.join(names)}.",
        )
    changes: dict[str, Any] = {}
    dtypes = dict(zip(present, frame.dtypes, strict=True))
    for spec in specs:
        dtype = dtypes[spec.name]
        kind = dtype_kind(dtype)
        if kind is None:
            kind = pandas_kind(frame[spec.name])
        if not _fits(spec.type, kind):
            raise SchemaMismatchError(
                f"Column '{spec.name}' is {kind} ({dtype}), but the model expects "
                f"{spec.type} ({spec.dtype}).",
                hint="Convert the column to the expected type before predicting.",
            )
        if spec.type == kind or spec.type == "object":
            continue
        column = frame[spec.name]
        if spec.type == "float" or (kind == "empty" and spec.type == "integer"):
            changes[spec.name] = column.astype(_FLOAT_DTYPES.get(spec.dtype, "float64"))
        elif spec.type == "categorical":
            changes[spec.name] = column.astype("category")
    if not changes and present == names:
        return frame
    out = frame[names]
    if changes:
        out = out.assign(**changes)
    return out


def _prepare_tensor(spec: TensorSpec, data: Any) -> Any:
    import numpy as np

    if _is_frame(data) or _is_arrow(data):
        data = to_frame(data).to_numpy()
    array = data if isinstance(data, np.ndarray) else np.asarray(data)
    expected = _TENSOR_KINDS.get(np.dtype(spec.dtype).kind, "object")
    actual = _TENSOR_KINDS.get(array.dtype.kind, "object")
    if not _fits(expected, actual):
        raise SchemaMismatchError(
            f"The input tensor is {array.dtype}, but the model expects {spec.dtype}.",
            hint="Convert the array before predicting.",
        )
    if array.ndim != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
    ):
        raise SchemaMismatchError(
            f"The input tensor has shape {list(array.shape)}, but the model expects "
            f"{list(spec.shape)} (-1: any size).",
            hint="Reshape the array before predicting.",
        )
    return array if array.dtype == np.dtype(spec.dtype) else array.astype(spec.dtype)
