"""Live performance: a prediction log joined with outcomes that arrive later, window by window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from plinth.errors import ConfigError
from plinth.monitoring.performance import (
    WindowPerformance,
    classification_metrics,
    infer_task,
    join_outcomes,
    log_performance,
    overall_performance,
    performance_windows,
    regression_metrics,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


# --- metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn_with_ties(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=2000)
    # Scores rounded to two decimals: many ties, inside (0, 1) and related to the label.
    score = np.clip(np.round(0.3 * y + rng.uniform(0, 0.7, size=2000), 2), 0.01, 0.99)
    got = classification_metrics(y, score, threshold=0.5)
    assert got["auc"] == pytest.approx(metrics.roc_auc_score(y, score), abs=1e-12)
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y, score), rel=1e-9)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, score >= 0.5))
    assert got["brier"] == pytest.approx(metrics.brier_score_loss(y, score), rel=1e-9)
    assert got["positive_rate"] == pytest.approx(y.mean())
    assert got["predicted_positive_rate"] == pytest.approx((score >= 0.5).mean())
    assert got["rows"] == 2000
    # Only a few distinct scores: heavy ties.
    coarse = np.round(score, 1)
    assert classification_metrics(y, coarse)["auc"] == pytest.approx(
        metrics.roc_auc_score(y, coarse), abs=1e-12
    )


def test_classification_metrics_edge_cases():
    one_class = classification_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert one_class["auc"] is None
    assert one_class["accuracy"] == pytest.approx(2 / 3)
    assert one_class["rows"] == 3
    empty = classification_metrics([], [])
    assert empty["rows"] == 0 and all(v is None for k, v in empty.items() if k != "rows")
    # Booleans and Arrow arrays with missing values (left out) are accepted.
    arrow = classification_metrics(
        pa.chunked_array([[True, False, None, True]]), pa.array([0.9, 0.1, 0.5, None])
    )
    assert arrow["rows"] == 2 and arrow["auc"] == 1.0 and arrow["accuracy"] == 1.0
    # Probabilities of exactly 0 and 1 are clipped, so the log loss stays finite.
    assert np.isfinite(classification_metrics([1, 0], [0.0, 1.0])["log_loss"])
    with pytest.raises(ConfigError, match="0/1"):
        classification_metrics([0, 2], [0.1, 0.9])
    with pytest.raises(ConfigError, match="3 labels but 2 predictions"):
        classification_metrics([0, 1, 1], [0.1, 0.9])


def test_regression_metrics_exact():
    got = regression_metrics([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 4.0])
    # errors: +1, 0, -2, 0
    assert got == {"mae": 0.75, "rmse": pytest.approx(np.sqrt(5 / 4)), "bias": -0.25, "rows": 4}
    assert regression_metrics([], []) == {"mae": None, "rmse": None, "bias": None, "rows": 0}


def test_infer_task():
    assert infer_task(pa.chunked_array([[True, False]])) == "classification"
    assert infer_task(pa.chunked_array([[0, 1, None, 1]])) == "classification"
    assert infer_task(pa.chunked_array([[0.0, 1.0]])) == "classification"
    assert infer_task(pa.chunked_array([[0, 1, 2]])) == "regression"
    assert infer_task(pa.chunked_array([[0.5, 12.0]])) == "regression"
    with pytest.raises(ConfigError, match="not numbers or booleans"):
        infer_task(pa.chunked_array([["yes", "no"]]))


# --- joins ---------------------------------------------------------------------------------


def _small_log() -> pa.Table:
    return pa.table(
        {
            "request_id": ["r3", "r1", "r2", "r2", "r4"],
            "row": [0, 0, 0, 0, 0],
            "event_time": pa.array([T0 + timedelta(minutes=m) for m in (3, 1, 2, 2, 4)], TS),
            "route": ["primary", "primary", "canary", "shadow", "primary"],
            "label": [9, 9, 9, 9, 9],  # a logged input that happens to be called 'label'
            "prediction": [0.3, 0.1, 0.2, 0.99, 0.4],
        }
    )


def test_join_by_request_id_last_outcome_wins_and_unknown_ids_are_ignored():
    outcomes = pa.table(
        {
            "request_id": ["r1", "r2", "zz", "r1", "r3", "r4"],
            "defaulted": [1, 0, 1, 0, None, 1],  # r1 corrected to 0; r3's label is missing
        }
    )
    joined = join_outcomes(_small_log(), outcomes, label="defaulted")
    # Sorted by event time, the shadow copy of r2 left out, r3 (null label) and zz unmatched.
    assert joined.select(["request_id", "route", "label"]).to_pylist() == [
        {"request_id": "r1", "route": "primary", "label": 0},
        {"request_id": "r2", "route": "canary", "label": 0},
        {"request_id": "r4", "route": "primary", "label": 1},
    ]
    assert joined.column_names == [*_small_log().column_names]
    assert joined.schema.field("event_time").type == TS


def test_join_casts_outcome_keys_and_names_missing_columns():
    log = pa.table(
        {
            "request_id": ["1", "2"],
            "event_time": pa.array([T0, T0], TS),
            "prediction": [0.2, 0.8],
        }
    )
    joined = join_outcomes(log, pa.table({"request_id": [2], "y": [True]}), label="y")
    assert joined["request_id"].to_pylist() == ["2"] and joined["label"].to_pylist() == [True]
    with pytest.raises(ConfigError, match="'outcome'"):
        join_outcomes(log, pa.table({"request_id": ["1"], "y": [1]}), label="outcome")
    with pytest.raises(ConfigError, match="'customer'"):
        join_outcomes(log, pa.table({"customer": ["1"], "y": [1]}), label="y", on=["customer"])
    with pytest.raises(ConfigError, match="'verdict'"):
        join_outcomes(log, pa.table({"request_id": ["1"], "verdict": ["bad"]}), label="verdict")
    with pytest.raises(ConfigError, match="do not convert"):
        join_outcomes(log, pa.table({"request_id": [[1]], "y": [1]}), label="y")


def test_asof_join_by_entity_and_time_with_tolerance():
    hour = timedelta(hours=1)
    log = pa.table(
        {
            "customer": [1, 1, 2, 1, 1],
            "event_time": pa.array([T0, T0 + hour, T0, T0 + 2 * hour, T0 + 2 * hour], TS),
            "route": ["primary", "primary", "primary", "shadow", "shadow"],
            "prediction": [0.1, 0.2, 0.3, 0.9, 0.9],
        }
    )
    outcomes = pa.table(
        {
            "customer": [1, 1, 2, 3, 2, 1],
            "seen_at": pa.array(
                [
                    T0 + 0.5 * hour,  # -> customer 1's first prediction
                    T0 + 5 * hour,  # -> its second (the shadow ones are left out); 4h late
                    T0 + 0.25 * hour,  # -> customer 2's prediction
                    T0 + hour,  # no such customer
                    T0 - hour,  # before any prediction for customer 2
                    T0 + 0.75 * hour,  # a second outcome for customer 1's first prediction
                ],
                pa.timestamp("ms"),  # naive and in milliseconds: read as UTC
            ),
            "churned": [0, 1, 1, 1, 0, 1],
        }
    )
    joined = join_outcomes(log, outcomes, label="churned", on=["customer"], time_column="seen_at")
    assert joined.select(["customer", "prediction", "label"]).to_pylist() == [
        {"customer": 1, "prediction": 0.1, "label": 1},  # the later of its two outcomes
        {"customer": 2, "prediction": 0.3, "label": 1},
        {"customer": 1, "prediction": 0.2, "label": 1},
    ]
    near = join_outcomes(
        log,
        outcomes,
        label="churned",
        on=["customer"],
        time_column="seen_at",
        tolerance=timedelta(hours=2),
    )
    assert near["prediction"].to_pylist() == [0.1, 0.3]  # the outcome 4h after is too late
    late = outcomes.append_column("day", pa.array([3] * outcomes.num_rows))
    with pytest.raises(ConfigError, match="'day' holds int64 values, not timestamps"):
        join_outcomes(log, late, label="churned", on=["customer"], time_column="day")
    with pytest.raises(ConfigError, match="tolerance"):
        join_outcomes(log, outcomes, label="churned", on=["customer"], tolerance=timedelta(1))


# --- windows over a workspace's prediction log ---------------------------------------------


def _log(ws, days: int = 3, per_day: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """A log of 'risk': good scores on days 0-1, random on day 2, plus shadow copies.

    Returns each primary row's request id number and its true label."""
    rng = np.random.default_rng(11)
    rows = days * per_day
    day = np.repeat(np.arange(days), per_day)
    y = rng.integers(0, 2, size=rows)
    good = np.clip(0.5 * y + 0.25 + rng.normal(0, 0.12, size=rows), 0, 1)
    score = np.where(day < 2, good, rng.uniform(size=rows))
    region = np.where(np.arange(rows) % 3 == 0, "north", "south")
    times = [T0 + timedelta(days=int(d), seconds=int(i % per_day) * 60) for i, d in enumerate(day)]
    primary = {
        "request_id": [f"r{i}" for i in range(rows)],
        "row": [0] * rows,
        "answered_at": pa.array(times, TS),
        "event_time": pa.array(times, TS),
        "model_version": [1] * rows,
        "route": ["canary" if i % 10 == 0 else "primary" for i in range(rows)],
        "latency_ms": [1.5] * rows,
        "region": region,
        "prediction": score,
    }
    shadow = dict(primary)
    shadow["route"] = ["shadow"] * rows
    shadow["model_version"] = [2] * rows
    shadow["prediction"] = 1.0 - score  # a terrible shadow model: must not count
    table = pa.concat_tables([pa.table(primary), pa.table(shadow)])
    ws.lake.ingest(table, table="predictions__risk")
    return np.arange(rows), y


def _outcomes(ws, ids: np.ndarray, y: np.ndarray, table: str = "risk_outcomes") -> None:
    """Outcomes for 80% of the requests, shuffled, as a later-arriving lake table."""
    rng = np.random.default_rng(12)
    pick = rng.permutation(ids.size)[: int(ids.size * 0.8)]
    ws.lake.ingest(
        pa.table({"request_id": [f"r{i}" for i in ids[pick]], "defaulted": y[pick]}),
        table=table,
    )


def test_daily_windows_show_the_day_the_model_went_bad(ws):
    ids, y = _log(ws)
    _outcomes(ws, ids, y)
    windows = log_performance(
        ws, "risk@champion", "risk_outcomes", label="defaulted", window="1d", slice_by=["region"]
    )
    assert [w.rows for w in windows] == [1000, 1000, 1000]  # shadow rows left out
    assert sum(w.labelled for w in windows) == 2400
    assert all(700 < w.labelled < 900 for w in windows)
    assert windows[0].start == T0 and windows[2].end == T0 + timedelta(days=3)
    aucs = [w.metrics["auc"] for w in windows]
    assert aucs[0] > 0.9 and aucs[1] > 0.9 and aucs[2] < 0.65
    assert windows[2].metrics["log_loss"] > windows[0].metrics["log_loss"]
    assert all(w.metrics["rows"] == w.labelled for w in windows)
    # Per region: both values, their rows adding up to the window's labelled rows.
    day0 = windows[0].slices["region"]
    assert set(day0) == {"north", "south"}
    assert day0["north"]["rows"] + day0["south"]["rows"] == windows[0].labelled
    assert day0["north"]["auc"] > 0.85 and windows[2].slices["region"]["north"]["auc"] < 0.7
    # JSON-ready.
    payload = json.loads(json.dumps([w.to_dict() for w in windows]))
    assert payload[0]["start"] == T0.isoformat() and payload[0]["labelled"] == windows[0].labelled


def test_row_windows_and_slices_by_route(ws):
    from plinth.serving.prediction_log import log_table

    ids, y = _log(ws)
    _outcomes(ws, ids, y)
    windows = log_performance(
        ws, "risk", "risk_outcomes@0", label="defaulted", window="1500rows", slice_by=["route"]
    )
    assert [w.rows for w in windows] == [1500, 1500]
    assert [w.start for w in windows] == [None, None]
    assert sum(w.labelled for w in windows) == 2400
    assert windows[0].metrics["auc"] > 0.9 > windows[1].metrics["auc"]
    assert set(windows[0].slices["route"]) == {"primary", "canary"}  # never "shadow"
    # The same windows from the building blocks, and overall metrics over all labelled rows.
    log = ws.lake.read(log_table("risk"))
    joined = join_outcomes(log, ws.lake.read("risk_outcomes"), label="defaulted")
    assert joined.num_rows == 2400
    again = performance_windows(log, joined, window="1500rows", slice_by=["route"])
    assert [w.to_dict() for w in again] == [w.to_dict() for w in windows]
    overall = overall_performance(joined, task="classification")
    assert overall["rows"] == 2400 and 0.75 < overall["auc"] < 0.95


def test_regression_task_inferred_and_join_by_entity_and_time(ws):
    rng = np.random.default_rng(3)
    n = 200
    times = [T0 + timedelta(hours=i) for i in range(n)]
    keys = np.arange(n) % 5
    prediction = rng.normal(10, 1, size=n)
    ws.lake.ingest(
        pa.table(
            {
                "request_id": [f"r{i}" for i in range(n)],
                "event_time": pa.array(times, TS),
                "route": ["primary"] * n,
                "k": keys,
                "prediction": prediction,
            }
        ),
        table="predictions__risk",
    )
    # Each prediction's outcome, measured for its entity 30 minutes later (the entity's next
    # prediction comes 5 hours later).
    ws.lake.ingest(
        pa.table(
            {
                "k": keys,
                "measured_at": pa.array([t + timedelta(minutes=30) for t in times], TS),
                "delay": prediction + 0.5,
            }
        ),
        table="delays",
    )
    windows = log_performance(
        ws, "risk@champion", "delays", label="delay", on=["k"], time_column="measured_at"
    )
    assert [w.rows for w in windows] == [24] * 8 + [8]
    assert all(w.labelled == w.rows for w in windows)
    assert windows[0].metrics["bias"] == pytest.approx(-0.5)
    assert windows[0].metrics["mae"] == pytest.approx(0.5)
    assert set(windows[0].metrics) == {"mae", "rmse", "bias", "rows"}


def test_bad_input_and_no_labels(ws):
    with pytest.raises(ConfigError, match="no prediction log"):
        log_performance(ws, "risk@champion", "risk_outcomes", label="defaulted")
    ids, y = _log(ws, days=1, per_day=50)
    with pytest.raises(ConfigError, match="'risk_outcomes'"):
        log_performance(ws, "risk@champion", "risk_outcomes", label="defaulted")
    _outcomes(ws, ids, y)
    with pytest.raises(ConfigError, match="'risk_outcomes@7'"):
        log_performance(ws, "risk@champion", "risk_outcomes@7", label="defaulted")
    with pytest.raises(ConfigError, match="does not name a table version"):
        log_performance(ws, "risk@champion", "risk_outcomes@x", label="defaulted")
    with pytest.raises(ConfigError, match="'bad_label'"):
        log_performance(ws, "risk@champion", "risk_outcomes", label="bad_label")
    with pytest.raises(ConfigError, match="'region_x'"):
        log_performance(
            ws, "risk@champion", "risk_outcomes", label="defaulted", slice_by=["region_x"]
        )
    with pytest.raises(ConfigError, match="'ranking' is not a task"):
        log_performance(ws, "risk@champion", "risk_outcomes", label="defaulted", task="ranking")
    with pytest.raises(ConfigError, match="not a window"):
        log_performance(ws, "risk@champion", "risk_outcomes", label="defaulted", window="soon")
    ws.lake.ingest(
        pa.table({"request_id": ["r1", "r2"], "verdict": ["good", "bad"]}), table="verdicts"
    )
    with pytest.raises(ConfigError, match="'verdict'"):
        log_performance(ws, "risk@champion", "verdicts", label="verdict")
    # Outcomes that match nothing: windows with no labelled rows and no metrics, not an error.
    ws.lake.ingest(pa.table({"request_id": ["zz"], "defaulted": [1]}), table="strays")
    windows = log_performance(ws, "risk@champion", "strays", label="defaulted", slice_by=["region"])
    assert [(w.rows, w.labelled, w.metrics, w.slices) for w in windows] == [(50, 0, {}, {})]
    assert windows[0].to_dict()["metrics"] == {}


def test_window_performance_is_frozen():
    window = WindowPerformance(None, None, rows=1, labelled=0, metrics={})
    with pytest.raises(AttributeError):
        window.rows = 2  # type: ignore[misc]
    assert window.to_dict() == {
        "start": None,
        "end": None,
        "rows": 1,
        "labelled": 0,
        "metrics": {},
        "slices": {},
    }


def test_a_million_labelled_rows_score_quickly():
    import time

    rng = np.random.default_rng(0)
    n = 1_000_000
    seconds = np.sort(rng.integers(0, 7 * 86400, size=n))
    y = rng.integers(0, 2, size=n)
    log = pa.table(
        {
            "request_id": pa.array(np.arange(n).astype(str)),
            "event_time": pa.array(
                (np.datetime64("2024-03-01", "us") + seconds * 1_000_000).astype("datetime64[us]"),
                TS,
            ),
            "region": pa.array(np.where(y == 1, "a", "b")),
            "prediction": rng.uniform(size=n),
        }
    )
    joined = log.append_column("label", pa.array(y))
    began = time.perf_counter()
    windows = performance_windows(log, joined, window="1d", slice_by=["region"])
    elapsed = time.perf_counter() - began
    assert len(windows) == 7 and sum(w.labelled for w in windows) == n
    assert elapsed < 5.0  # about 0.3 s on a laptop; generous for slow CI machines
