"""Monitoring profiles and the incremental hourly history of a prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from plinth.errors import ConfigError
from plinth.monitoring.history import stored_windows, update_history
from plinth.monitoring.profile import PREDICTION, ensure_profile
from plinth.monitoring.service import log_drift

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _append(ws, start: datetime, hours: int, per_hour: int, shift: float = 0.0, seed: int = 0):
    """Append ``hours`` hours of 'risk' traffic (version 1) to its prediction log."""
    rng = np.random.default_rng(seed)
    rows = hours * per_hour
    offsets = np.repeat(np.arange(hours), per_hour) * 3600 + rng.integers(0, 3600, rows)
    x = rng.normal(size=rows) + shift
    x[:5] = np.nan
    ws.lake.ingest(
        pa.table(
            {
                "request_id": [f"r{seed}-{i}" for i in range(rows)],
                "event_time": pa.array(
                    [start + timedelta(seconds=int(s)) for s in offsets],
                    pa.timestamp("us", tz="UTC"),
                ),
                "model_version": np.ones(rows, np.int64),
                "route": ["shadow" if i % 50 == 0 else "primary" for i in range(rows)],
                "latency_ms": rng.gamma(2.0, 1.0, rows),
                "x": x,
                "scores__score": rng.choice([0.1, 0.2, 0.4, 0.5, 9.0], size=rows),
                "prediction": rng.normal(size=rows),
            }
        ),
        table="predictions__risk",
        mode="append",
    )


def test_profile_is_fitted_once_with_prediction_and_bounds(ws):
    profile = ensure_profile(ws, "risk@champion")
    assert profile.inputs == ["x", "scores__score"]
    assert set(profile.columns) == {"x", "scores__score", PREDICTION}
    assert profile.bounds["x"].low is not None and profile.bounds["x"].high is not None
    again = ensure_profile(ws, "risk@champion")
    assert again.id == profile.id
    other = ensure_profile(ws, "risk@champion", where="x > 0")
    assert other.id != profile.id and other.reference.endswith("where x > 0")


def test_history_adds_only_new_rows_and_sums_hours_into_windows(ws):
    profile = ensure_profile(ws, "risk@champion")
    with pytest.raises(ConfigError, match="no prediction log"):
        update_history(ws, profile)
    _append(ws, T0, hours=30, per_hour=100, seed=1)
    first = update_history(ws, profile)
    assert first.rows == 3000 - 60 and first.buckets == 30 and not first.rebuilt
    assert update_history(ws, profile).rows == 0
    _append(ws, T0 + timedelta(hours=29), hours=3, per_hour=100, shift=3.0, seed=2)
    second = update_history(ws, profile)
    assert second.rows == 300 - 6 and second.buckets == 3
    days = stored_windows(ws, profile, "1d")
    assert [w.start for w in days] == [T0, T0 + timedelta(days=1)]
    assert sum(w.rows for w in days) == first.rows + second.rows
    # The stored counts equal a full scan of the log: the incremental path loses nothing.
    scanned = log_drift(ws, "risk@champion", window="1d")
    for stored, scan in zip(days, scanned, strict=True):
        assert stored.rows == scan.rows
        assert stored.drift(profile).columns[0].psi == pytest.approx(scan.report.columns[0].psi)
    assert "x" in days[1].drift(profile).flagged() and "x" not in days[0].drift(profile).flagged()
    quality = days[0].quality_report(profile)
    # Five nulls at the start of the first append, one of them on a shadow row.
    assert quality["x"]["null_share"] == pytest.approx(4 / quality["x"]["rows"])
    # A fifth of the scores are 9.0, far above anything in the reference.
    assert quality["scores__score"]["outside_reference_share"] == pytest.approx(0.2, abs=0.03)
    assert days[1].quality_report(profile)["x"]["outside_reference_share"] > 0.1
    latency = days[0].latency_report()
    assert 1.0 < latency["p50_ms"] < 2.5 and latency["p99_ms"] > latency["p50_ms"]


def test_rewritten_log_rebuilds_and_bad_windows(ws):
    profile = ensure_profile(ws, "risk@champion")
    _append(ws, T0, hours=4, per_hour=50, seed=3)
    update_history(ws, profile)
    ws.lake.delete("predictions__risk", "route = 'primary' and x > 1")
    rebuilt = update_history(ws, profile)
    assert rebuilt.rebuilt
    total = sum(w.rows for w in stored_windows(ws, profile, "1h"))
    assert total == rebuilt.rows
    with pytest.raises(ConfigError, match="whole number of hours"):
        stored_windows(ws, profile, "30m")
    with pytest.raises(ConfigError, match="whole number of hours"):
        stored_windows(ws, profile, "100rows")


def test_categorical_counts_per_hour_match_the_reference_counts():
    from plinth.monitoring.drift import CategoricalReference
    from plinth.monitoring.history import _categorical_counts

    ref = CategoricalReference.fit(["a", "b", "b", "c"])
    values = pa.chunked_array([["a", None, "z", "b"], ["z", "y", "a"]])
    group = np.array([0, 0, 0, 1, 1, 1, 1])
    counts, invalid = _categorical_counts(ref, ("a", "b"), values, group, 2)
    assert counts[0].counts.tolist() == ref.counts(["a", "z"]).counts.tolist()
    assert counts[0].nulls == 1 and counts[0].unseen == {"z": 1}
    assert counts[1].unseen == {"z": 1, "y": 1}
    assert invalid.tolist() == [1, 2]
