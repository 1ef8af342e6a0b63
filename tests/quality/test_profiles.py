"""Profiles and drift: statistics checked against numpy/pandas, storage, PSI per column."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

import plinth
from plinth.catalog.models import Profile
from plinth.errors import TableNotFoundError, VersionNotFoundError
from plinth.lake.duck import local_parquet_files
from plinth.quality import profiles
from plinth.quality.drift import OTHER, column_shifts, psi
from plinth.quality.profiles import compute_profile, get_profile, profile_version

QUANTILE_KEYS = ["0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99"]


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Any]:
    workspace = plinth.Workspace(settings=plinth.Settings(home=tmp_path / "ws", user="tester"))
    yield workspace
    workspace.close()


def _mixed(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    values = rng.normal(10.0, 3.0, n)
    mask = rng.random(n) < 0.1
    return pa.table(
        {
            "x": pa.array(values, mask=mask),
            "n": pa.array(rng.integers(-50, 50, n)),
            "s": pa.array(rng.choice(["red", "green", "blue", "amber"], n, p=[0.4, 0.3, 0.2, 0.1])),
        }
    )


# -- numbers against numpy / pandas ----------------------------------------------------------


def test_numeric_statistics_match_numpy_and_pandas():
    data = _mixed(5000)
    col = compute_profile(data, bins=20)["columns"]["x"]
    series = data.column("x").to_pandas()
    values = series.dropna().to_numpy()
    assert col["kind"] == "numeric" and col["type"] == "double"
    assert col["count"] == len(values)
    assert col["nulls"] == int(series.isna().sum())
    assert col["null_fraction"] == pytest.approx(series.isna().mean(), abs=1e-12)
    assert col["min"] == values.min() and col["max"] == values.max()
    assert abs(col["mean"] - values.mean()) < 1e-9
    assert abs(col["std"] - series.std()) < 1e-9  # pandas: sample std, ddof=1
    assert abs(col["distinct"] - len(np.unique(values))) <= 0.05 * len(values)
    for key in QUANTILE_KEYS:
        assert abs(col["quantiles"][key] - np.quantile(values, float(key))) < 1e-9


def test_histogram_has_fixed_equal_width_edges_and_counts_every_value():
    data = _mixed(5000)
    col = compute_profile(data, bins=20)["columns"]["x"]
    values = data.column("x").drop_null().to_numpy()
    edges, counts = col["histogram"]["edges"], col["histogram"]["counts"]
    assert len(edges) == 21 and len(counts) == 20
    assert edges[0] == col["min"] and edges[-1] == col["max"]
    widths = np.diff(edges)
    assert np.allclose(widths, widths[0], rtol=1e-9)
    assert sum(counts) == col["count"]
    expected, _ = np.histogram(values, bins=np.array(edges))
    assert counts == expected.tolist()


def test_integer_column_keeps_exact_extremes():
    col = compute_profile(_mixed(2000), bins=10)["columns"]["n"]
    assert isinstance(col["min"], int) and isinstance(col["max"], int)
    assert col["type"] == "int64"
    assert sum(col["histogram"]["counts"]) == col["count"] == 2000
    assert len(col["histogram"]["edges"]) == 11


def test_categorical_top_values_ties_by_value_and_other_count():
    data = pa.table({"s": ["b", "a", "c", "a", "b", "d", None, "e", "a"]})
    col = compute_profile(data, top=3)["columns"]["s"]
    assert col["kind"] == "categorical"
    assert col["count"] == 8 and col["nulls"] == 1 and col["distinct"] == 5
    assert col["top"] == [
        {"value": "a", "count": 3},
        {"value": "b", "count": 2},
        {"value": "c", "count": 1},
    ]
    assert col["other_count"] == 2


def test_categorical_counts_match_pandas():
    data = _mixed(3000)
    col = compute_profile(data, top=20)["columns"]["s"]
    counts = data.column("s").to_pandas().value_counts()
    assert {t["value"]: t["count"] for t in col["top"]} == counts.to_dict()
    assert col["other_count"] == 0


def test_boolean_column_lists_both_values():
    data = pa.table({"b": [True, False, True, None, True]})
    col = compute_profile(data)["columns"]["b"]
    assert col["kind"] == "boolean" and col["distinct"] == 2
    assert col["top"] == [{"value": True, "count": 3}, {"value": False, "count": 1}]
    assert col["nulls"] == 1 and col["other_count"] == 0


def test_temporal_column_reports_iso_extremes_and_epoch_histogram():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    stamps = pd.date_range(start, periods=1000, freq="h")
    data = pa.table({"at": pa.array(stamps, type=pa.timestamp("us", tz="UTC"))})
    col = compute_profile(data, bins=10)["columns"]["at"]
    assert col["kind"] == "temporal"
    assert col["min"] == "2024-01-01T00:00:00+00:00"
    assert col["max"] == stamps[-1].isoformat()
    hist = col["histogram"]
    assert hist["edges"][0] == start.timestamp()
    assert hist["edges"][-1] == stamps[-1].timestamp()
    assert len(hist["edges"]) == 11 and sum(hist["counts"]) == 1000
    assert hist["counts"] == [100] * 10


def test_date_column_is_temporal():
    data = pa.table({"d": pa.array([19000, 19001, None], type=pa.date32())})
    col = compute_profile(data)["columns"]["d"]
    assert col["kind"] == "temporal" and col["min"] == "2022-01-08" and col["nulls"] == 1


def test_empty_table_profiles_every_column():
    data = _mixed(10).slice(0, 0)
    profile = compute_profile(data)
    assert profile["row_count"] == 0
    x = profile["columns"]["x"]
    assert x["count"] == 0 and x["nulls"] == 0 and x["null_fraction"] == 0.0
    assert x["min"] is None and x["mean"] is None and x["std"] is None
    assert x["histogram"] == {"edges": [], "counts": []}
    assert profile["columns"]["s"]["top"] == [] and profile["columns"]["s"]["other_count"] == 0


def test_all_null_column():
    data = pa.table({"x": pa.array([None] * 4, type=pa.float64()), "k": [1, 2, 3, 4]})
    col = compute_profile(data)["columns"]["x"]
    assert col["count"] == 0 and col["nulls"] == 4 and col["null_fraction"] == 1.0
    assert col["min"] is None and col["histogram"] == {"edges": [], "counts": []}
    assert all(v is None for v in col["quantiles"].values())


def test_constant_column_gets_one_bin():
    col = compute_profile(pa.table({"k": [7.0] * 5}))["columns"]["k"]
    assert col["histogram"] == {"edges": [7.0, 7.0], "counts": [5]}
    assert col["std"] == 0.0


def test_nan_and_infinity_are_counted_but_left_out_of_statistics():
    data = pa.table({"x": [1.0, float("nan"), 3.0, float("inf"), None]})
    col = compute_profile(data)["columns"]["x"]
    assert col["count"] == 4 and col["nulls"] == 1 and col["non_finite"] == 2
    assert col["mean"] == 2.0 and col["max"] == 3.0
    assert sum(col["histogram"]["counts"]) == 2


def test_profile_is_plain_json():
    decimals = pa.array([Decimal("1.50")] * 200, type=pa.decimal128(6, 2))
    data = _mixed(200).append_column("d", decimals)
    profile = compute_profile(data)
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile


def test_large_tables_estimate_quantiles_from_a_sample(monkeypatch):
    monkeypatch.setattr(profiles, "QUANTILE_SAMPLE_ROWS", 2000)
    values = np.linspace(0.0, 1.0, 50_000)
    col = compute_profile(pa.table({"u": values}))["columns"]["u"]
    assert col["quantiles"]["0.5"] == pytest.approx(0.5, abs=0.05)
    assert col["quantiles"]["0.99"] == pytest.approx(0.99, abs=0.02)
    assert col["mean"] == pytest.approx(0.5, abs=1e-12)  # everything else stays exact


def test_parquet_dataset_matches_table_and_fills_columns_missing_from_old_files(tmp_path):
    first = pa.table({"a": [1.0, 2.0, None], "s": ["x", "y", "x"]})
    second = pa.table({"a": [4.0, 5.0], "s": ["z", "x"], "b": [1, 2]})
    pq.write_table(first, tmp_path / "one.parquet")
    pq.write_table(second, tmp_path / "two.parquet")
    schema = pa.schema([("a", pa.float64()), ("s", pa.string()), ("b", pa.int64())])
    dataset = ds.dataset(
        [str(tmp_path / "one.parquet"), str(tmp_path / "two.parquet")], schema=schema
    )
    assert local_parquet_files(dataset)  # read by DuckDB's Parquet reader
    from_files = compute_profile(dataset)
    assert from_files == compute_profile(dataset.to_table())
    assert from_files["columns"]["b"]["nulls"] == 3
    assert from_files["columns"]["a"]["mean"] == 3.0


# -- stored profiles -------------------------------------------------------------------------


def test_profile_version_is_stored_once(workspace):
    workspace.lake.ingest(_mixed(500), table="t")
    first = profile_version(workspace.lake, "t", 0)
    again = profile_version(workspace.lake, "t", 0)
    assert first == again == get_profile(workspace.catalog, "t", 0)
    assert first["row_count"] == 500 and set(first["columns"]) == {"x", "n", "s"}
    assert first["columns"] == compute_profile(workspace.lake.scan("t", 0))["columns"]
    with workspace.catalog.session() as session:
        rows = session.scalar(select(func.count()).select_from(Profile))
    assert rows == 1
    assert get_profile(workspace.catalog, "t", 5) is None


def test_concurrent_profile_version_stores_one_row(workspace):
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import delete

    workspace.lake.ingest(_mixed(2000), table="t")
    with workspace.catalog.session() as session:
        session.execute(delete(Profile))
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: profile_version(workspace.lake, "t", 0), range(3)))
    assert results[0] == results[1] == results[2]
    with workspace.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Profile)) == 1


def test_profile_version_of_unknown_table_or_version(ws):
    with pytest.raises(TableNotFoundError):
        profile_version(ws.lake, "nope", 0)
    ws.lake.ingest(_mixed(10), table="t")
    with pytest.raises(VersionNotFoundError):
        profile_version(ws.lake, "t", 3)


def test_profile_of_an_evolved_append_counts_new_column_nulls(ws):
    ws.lake.ingest(pa.table({"a": [1, 2, 3]}), table="t")
    ws.lake.ingest(pa.table({"a": [4], "b": ["new"]}), table="t", evolve=True)
    columns = profile_version(ws.lake, "t", 1)["columns"]
    assert columns["a"]["count"] == 4 and columns["b"]["nulls"] == 3
    assert columns["b"]["top"] == [{"value": "new", "count": 1}]


# -- drift -----------------------------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero_and_empty_bins_stay_finite():
    assert psi([5, 10, 85], [50, 100, 850]) == pytest.approx(0.0, abs=1e-12)
    value = psi([0, 10, 10], [10, 10, 0])
    assert math.isfinite(value) and value > 1
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        psi([0, 0], [1, 2])


def _normal(shift: float, n: int = 20_000, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"v": rng.normal(shift, 1.0, n), "w": rng.normal(0.0, 1.0, n)})


def test_shifted_normal_has_large_psi_and_same_distribution_small(workspace):
    workspace.lake.ingest(_normal(0.0, seed=3), table="t")
    workspace.lake.ingest(_normal(1.0, seed=4), table="t", mode="overwrite")
    shifts = column_shifts(workspace.lake, "t", 0, 1)
    assert [s.column for s in shifts] == ["v", "w"]  # largest first
    v, w = shifts
    assert v.psi is not None and v.psi > 0.25 and v.severity == "significant"
    assert w.psi is not None and w.psi < 0.05
    assert v.reference["edges"] == v.current["edges"]
    assert sum(v.current["counts"]) == 20_000  # values beyond the edges land in end bins


def test_psi_against_the_same_version_is_zero(ws):
    ws.lake.ingest(_mixed(2000), table="t")
    for shift in column_shifts(ws.lake, "t", 0, 0):
        assert shift.psi == pytest.approx(0.0, abs=1e-12), shift.column


def test_new_and_missing_categories_are_reported(workspace):
    workspace.lake.ingest(pa.table({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20}), table="t")
    workspace.lake.ingest(
        pa.table({"c": ["a"] * 50 + ["b"] * 30 + ["d"] * 20}), table="t", mode="overwrite"
    )
    (shift,) = column_shifts(workspace.lake, "t", 0, 1)
    assert shift.kind == "categorical"
    assert shift.new_categories == ["d"] and shift.missing_categories == ["c"]
    assert shift.reference["labels"] == ["a", "b", "c", OTHER]
    assert shift.reference["counts"] == [50, 30, 20, 0]
    assert shift.current["counts"] == [50, 30, 0, 20]
    assert shift.psi is not None and shift.psi > 0.25


def test_categories_beyond_the_top_values_are_counted_exactly(ws, monkeypatch):
    import plinth.quality.profiles as module

    real = module.compute_profile
    monkeypatch.setattr(module, "compute_profile", lambda data, **kw: real(data, top=2))
    ws.lake.ingest(pa.table({"c": ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["e"]}), table="t")
    ws.lake.ingest(pa.table({"c": ["d"] * 6 + ["c"] * 5 + ["a"]}), table="t", mode="overwrite")
    (shift,) = column_shifts(ws.lake, "t", 0, 1)
    assert shift.reference["labels"] == ["a", "b", OTHER]
    assert shift.reference["counts"] == [5, 4, 4]
    assert shift.current["counts"] == [1, 0, 11]
    assert shift.missing_categories == ["b"]
    assert shift.new_categories == ["d"]  # 'c' was in version 0, below its top 2


def test_constant_reference_compares_below_at_and_above(ws):
    ws.lake.ingest(pa.table({"k": [1.0] * 10}), table="t")
    ws.lake.ingest(pa.table({"k": [0.0] * 5 + [1.0] * 5 + [2.0] * 5}), table="t", mode="overwrite")
    (shift,) = column_shifts(ws.lake, "t", 0, 1)
    assert shift.reference["counts"] == [0, 10, 0]
    assert shift.current["counts"] == [5, 5, 5]
    assert shift.psi is not None and shift.psi > 0.25
