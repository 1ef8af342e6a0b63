"""Step outputs as artifacts: typed serializers, pickle only for recorded digests."""

from __future__ import annotations

import threading
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from plinth.errors import PipelineError
from plinth.pipelines.serialize import dump_value, load_value, split, value_kind


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"raw", "bytes"),
        ({"auc": 0.71, "tags": ["a"], "n": None}, "json"),
        ([1, 2.5, True, "x"], "json"),
        ((1, 2), "pickle"),  # a tuple would come back a list
        ({1: "a"}, "pickle"),  # int keys would come back strings
        ({"when": date(2024, 1, 1)}, "pickle"),
        (float("nan"), "pickle"),
        (np.arange(6).reshape(2, 3), "numpy"),
        (pa.table({"a": [1, 2]}), "arrow"),
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "pandas"),
    ],
)
def test_values_round_trip_with_their_serializer(value, kind):
    assert value_kind(value) == kind
    data = dump_value(value)
    assert split(data)[0] == kind
    loaded = load_value(data, trusted=True)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, value)
    elif isinstance(value, np.ndarray):
        assert (loaded == value).all() and loaded.dtype == value.dtype
    elif isinstance(value, pa.Table):
        assert loaded.equals(value)
    elif value != value:  # NaN
        assert loaded != loaded
    else:
        assert loaded == value and type(loaded) is type(value)


def test_mixed_dataframes_fall_back_to_pickle():
    frame = pd.DataFrame({"mixed": [1, "a", 2.5]})
    data = dump_value(frame)
    assert split(data)[0] == "pickle"
    pd.testing.assert_frame_equal(load_value(data, trusted=True), frame)


def test_pickles_load_only_when_trusted():
    data = dump_value((1, 2))
    with pytest.raises(PipelineError, match="Refusing to unpickle"):
        load_value(data, trusted=False)
    with pytest.raises(PipelineError, match="not a stored step output"):
        load_value(b"\x80\x04junk", trusted=True)


def test_unstorable_values_name_the_step():
    with pytest.raises(PipelineError, match=r"Step 'train' returned a _thread.lock as 'model'"):
        dump_value(threading.Lock(), "train", "model")
