"""Drift of a model's prediction log, window by window, against its training set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from plinth.cli.main import main
from plinth.errors import ConfigError
from plinth.monitoring.service import log_drift, parse_window

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _log(ws, days: int, shift_from: int) -> None:
    """A prediction log of 'risk': 500 rows a day; x moves by 2 from day ``shift_from``."""
    rng = np.random.default_rng(7)
    rows = 500 * days
    day = np.repeat(np.arange(days), 500)
    x = rng.normal(size=rows) + np.where(day >= shift_from, 2.0, 0.0)
    ws.lake.ingest(
        pa.table(
            {
                "request_id": [f"r{i}" for i in range(rows)],
                "event_time": pa.array(
                    [T0 + timedelta(days=int(d), minutes=i % 500) for i, d in enumerate(day)],
                    pa.timestamp("us", tz="UTC"),
                ),
                "route": ["primary"] * rows,
                "x": x,
                "scores__score": rng.choice([0.1, 0.2, 0.4, 0.5], size=rows),
                "prediction": rng.normal(size=rows),
            }
        ),
        table="predictions__risk",
    )


def _reference(ws) -> None:
    """A larger reference than the 120-row training set: x ~ N(0, 1), the same scores."""
    rng = np.random.default_rng(8)
    ws.lake.ingest(
        pa.table(
            {
                "x": rng.normal(size=5000),
                "scores__score": rng.choice([0.1, 0.2, 0.4, 0.5], size=5000),
            }
        ),
        table="risk_reference",
    )


def test_daily_windows_flag_the_days_whose_input_moved(ws):
    _log(ws, days=4, shift_from=2)
    _reference(ws)
    windows = log_drift(ws, "risk@champion", window="1d", reference="risk_reference@0")
    assert [w.rows for w in windows] == [500] * 4
    assert [("x" in w.report.flagged()) for w in windows] == [False, False, True, True]
    assert windows[0].start == T0 and windows[0].end == T0 + timedelta(days=1)
    by_rows = log_drift(ws, "risk@champion", window="1000rows", reference="risk_reference")
    assert [w.rows for w in by_rows] == [1000, 1000]


def test_bad_windows_references_and_missing_logs(ws, capsys):
    with pytest.raises(ConfigError, match="no prediction log"):
        log_drift(ws, "risk@champion")
    _log(ws, days=1, shift_from=5)
    with pytest.raises(ConfigError, match="does not run"):
        log_drift(ws, "risk@champion", reference_where="no_such_column > 1")
    with pytest.raises(ConfigError, match="not a window"):
        parse_window("soon")
    home = str(ws.home)
    assert main(["monitor", "drift", "risk@champion", "--window", "1d", "--home", home]) == 0
    out = capsys.readouterr().out
    assert "2024-03-01 00:00" in out and "500" in out
    assert main(["monitor", "drift", "risk@champion", "--window", "x", "--home", home]) == 1
    assert "not a window" in capsys.readouterr().err
