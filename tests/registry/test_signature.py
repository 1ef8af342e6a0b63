"""Signatures: inference from pandas, Arrow and arrays; checks that name the bad column."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from plinth.errors import ConfigError, SchemaMismatchError
from plinth.registry.signature import (
    ColumnSpec,
    Signature,
    TensorSpec,
    infer_signature,
    to_frame,
)


def example() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hour": np.array([5, 6], dtype="int64"),
            "temp": [40.5, 39.0],
            "carrier": pd.Categorical(["UA", "AA"]),
            "origin": ["JFK", "EWR"],
            "ok": [True, False],
            "when": pd.to_datetime(["2013-01-01", "2013-01-02"], utc=True),
        }
    )


def test_inference_from_pandas_kinds_and_dtypes():
    sig = infer_signature(example(), np.array([0.1, 0.2]))
    assert [(c.name, c.type) for c in sig.inputs] == [
        ("hour", "integer"),
        ("temp", "float"),
        ("carrier", "categorical"),
        ("origin", "string"),
        ("ok", "boolean"),
        ("when", "datetime"),
    ]
    assert sig.inputs[0].dtype == "int64"
    assert sig.outputs == TensorSpec("float64", (-1,))
    assert sig.columns == ["hour", "temp", "carrier", "origin", "ok", "when"]


def test_inference_from_arrow_matches_pandas_kinds():
    table = pa.table(
        {
            "hour": pa.array([5], pa.int32()),
            "temp": pa.array([1.5], pa.float32()),
            "carrier": pa.array(["UA"]).dictionary_encode(),
            "origin": ["JFK"],
            "ok": [True],
            "when": pa.array([datetime(2013, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            "day": pa.array([datetime(2013, 1, 1).date()], pa.date32()),
            "blob": pa.array([b"x"], pa.binary()),
        }
    )
    sig = infer_signature(table)
    assert [c.type for c in sig.inputs] == [
        "integer", "float", "categorical", "string", "boolean", "datetime", "date", "binary",
    ]  # fmt: skip
    assert sig.inputs[1].dtype == "float"
    assert sig.outputs is None


def test_json_round_trip_columns_and_tensor():
    sig = infer_signature(example(), pd.DataFrame({"p": [0.1, 0.2], "label": ["a", "b"]}))
    assert Signature.from_dict(sig.to_dict()) == sig
    tensor = infer_signature(np.zeros((3, 2, 4), dtype="float32"), np.zeros((3, 2)))
    assert tensor.to_dict()["inputs"] == {"type": "tensor", "dtype": "float32", "shape": [-1, 2, 4]}
    assert Signature.from_dict(tensor.to_dict()) == tensor
    assert tensor.columns is None and tensor.describe_inputs() == ["tensor float32[-1, 2, 4]"]
    with pytest.raises(ConfigError, match="needs an 'inputs' entry"):
        Signature.from_dict({"outputs": None})
    with pytest.raises(ConfigError, match="not understood"):
        Signature.from_dict({"inputs": {"type": "graph"}})


def test_prepare_reorders_and_widens():
    sig = infer_signature(example())
    given = example()[["origin", "when", "ok", "carrier", "temp", "hour"]]
    given["temp"] = np.array([40, 39], dtype="int64")  # integer where float is expected
    given["carrier"] = given["carrier"].astype(str)  # string where categorical is expected
    given["origin"] = pd.Categorical(given["origin"])  # categorical where string is expected
    out = sig.prepare(given)
    assert list(out.columns) == sig.columns
    assert out["temp"].dtype == np.float64 and out["temp"].tolist() == [40.0, 39.0]
    assert isinstance(out["carrier"].dtype, pd.CategoricalDtype)
    same = example()
    assert sig.prepare(same) is same  # nothing to change: no copy


def test_prepare_accepts_arrow_dicts_rows_and_arrays():
    sig = infer_signature(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert sig.prepare(pa.table({"b": [1.0], "a": [2.0]})).columns.tolist() == ["a", "b"]
    assert sig.prepare({"a": 1.0, "b": 2.0}).shape == (1, 2)
    assert sig.prepare({"a": [1.0, 2.0], "b": [3.0, 4.0]}).shape == (2, 2)
    assert sig.prepare([{"a": 1.0, "b": 2.0}]).shape == (1, 2)
    assert sig.prepare(np.array([[1.0, 2.0]])).columns.tolist() == ["a", "b"]
    with pytest.raises(SchemaMismatchError, match=r"shape \(3,\)"):
        sig.prepare(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(SchemaMismatchError, match="Cannot read the model's input from a set"):
        sig.prepare({1, 2})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["temp"]), "lacks column 'temp'"),
        (lambda f: f.assign(extra=1), "has column 'extra', which is not in the model's signature"),
        (
            lambda f: f.assign(temp=["warm", "cold"]),
            r"Column 'temp' is string \(.*\), but the "
            r"model expects float \(float64\)",
        ),
        (lambda f: f.assign(hour=[5.5, 6.0]), "Column 'hour' is float"),
        (lambda f: f.assign(ok=[1, 0]), "Column 'ok' is integer"),
        (lambda f: f.assign(origin=[1, 2]), "Column 'origin' is integer"),
        (lambda f: f.assign(when=["2013-01-01", "x"]), "Column 'when' is string"),
    ],
)
def test_prepare_names_the_bad_column(change, message):
    sig = infer_signature(example())
    with pytest.raises(SchemaMismatchError, match=message) as caught:
        sig.prepare(change(example()))
    assert caught.value.status_code == 422


def test_missing_lists_more_and_hint_names_columns():
    sig = infer_signature(example())
    with pytest.raises(SchemaMismatchError) as caught:
        sig.prepare(example()[["hour"]])
    assert "lacks column 'temp'" in caught.value.message and "and 4 more" in caught.value.message
    assert "hour, temp, carrier" in caught.value.hint


def test_duplicate_columns_are_refused():
    sig = infer_signature(pd.DataFrame({"a": [1.0]}))
    frame = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    with pytest.raises(SchemaMismatchError, match="more than once"):
        sig.prepare(frame)
    with pytest.raises(SchemaMismatchError, match="duplicate"):
        infer_signature(frame)


def test_all_null_column_fits_any_kind():
    sig = infer_signature(pd.DataFrame({"a": [1.0], "b": ["x"]}))
    out = sig.prepare(pd.DataFrame({"a": [None, None], "b": [None, None]}))
    assert out["a"].dtype == np.float64


def test_tensor_checks_dtype_and_shape():
    sig = Signature(TensorSpec("float32", (-1, 3)))
    out = sig.prepare(np.ones((2, 3), dtype="int64"))
    assert out.dtype == np.float32
    assert sig.prepare(pd.DataFrame(np.ones((2, 3)))).shape == (2, 3)
    with pytest.raises(SchemaMismatchError, match=r"shape \[2, 4\].*\[-1, 3\]"):
        sig.prepare(np.ones((2, 4)))
    with pytest.raises(SchemaMismatchError, match="shape"):
        sig.prepare(np.ones(3))
    with pytest.raises(SchemaMismatchError, match="tensor is bool"):
        sig.prepare(np.ones((2, 3), dtype=bool))
    with pytest.raises(ConfigError, match="Cannot describe an array"):
        infer_signature(np.array(["a", "b"]))


def test_to_frame_and_column_spec():
    assert to_frame({"a": 1}).to_dict("records") == [{"a": 1}]
    assert ColumnSpec("a", "float", "float64").to_dict() == {
        "name": "a",
        "type": "float",
        "dtype": "float64",
    }
    sig = infer_signature(example(), pd.Series([1, 2], name="label"))
    assert sig.describe_outputs() == ["label: integer (int64)"]


def test_outputs_of_any_dtype_and_non_string_column_names():
    sig = infer_signature(pd.DataFrame({"a": [1.0]}), np.array(["yes", "no"], dtype=object))
    assert sig.outputs == TensorSpec("object", (-1,))
    numbered = infer_signature(pd.DataFrame([[1.0, 2.0]]))
    assert numbered.columns == ["0", "1"]
    assert numbered.prepare(pd.DataFrame([[3.0, 4.0]])).columns.tolist() == ["0", "1"]
