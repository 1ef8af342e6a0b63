"""Monitoring benchmarks: drift of 1M current rows against a 1M-row reference, 20 columns.

Data is generated before timing (15 numeric, 5 categorical columns; 5 of them shifted in the
current window). The timed part profiles the reference (fine quantile histograms, category
counts), counts the current window over the same bins and computes every statistic. Peak RSS
is the process's own (``ru_maxrss``), data included.

A second figure times what monitoring does when a new window of 100k predictions arrives in a
model's prediction log (appended before timing, spread over one day): read only the new log
files, count them into hourly buckets, store the buckets and the new watermark in the catalog,
then sum the stored day and compute its drift and quality report.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from common import verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.monitoring.test_drift import SHIFTED, synthetic

from plinth.monitoring.drift import drift_report, fit_references, window_counts
from plinth.monitoring.history import stored_windows, update_history
from plinth.monitoring.profile import ensure_profile

TARGET_S = 5.0
TARGET_RSS_GB = 2.0
TARGET_WINDOW_S = 1.0


def timed_report(reference, current, columns):  # type: ignore[no-untyped-def]
    """Seconds to profile the reference, count the window and compute the report."""
    begin = time.perf_counter()
    refs = fit_references(reference, columns)
    report = drift_report(refs, window_counts(refs, current))
    return time.perf_counter() - begin, report, refs


def timed_new_window(reference, window):  # type: ignore[no-untyped-def]
    """Seconds to fold a new 100k-row window of a prediction log into the stored history."""
    import tempfile
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import pyarrow as pa
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    import plinth

    categorical = [c for c in reference.column_names if c.startswith("c")]
    with tempfile.TemporaryDirectory() as home:
        ws = plinth.Workspace(settings=plinth.Settings(home=home, user="bench"))
        try:
            frame = reference.slice(0, 5000).to_pandas()
            model = make_pipeline(
                make_column_transformer(
                    (OneHotEncoder(handle_unknown="ignore"), categorical), remainder="passthrough"
                ),
                LogisticRegression(max_iter=200),
            ).fit(frame, frame["n0"] > 0)
            ws.models.register(model, "bench", example=frame.head(5))
            ws.lake.ingest(reference, table="bench_reference")
            profile = ensure_profile(ws, "bench:1", reference="bench_reference")
            rng = np.random.default_rng(0)

            def log_of(rows, first_day, days):  # type: ignore[no-untyped-def]
                n = rows.num_rows
                seconds = np.sort(rng.integers(0, 86400 * days, n)) + 86400 * first_day
                stamps = pa.array(
                    [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=int(s)) for s in seconds],
                    pa.timestamp("us", "UTC"),
                )
                extra = {
                    "event_time": stamps,
                    "model_version": pa.array(np.ones(n, np.int64)),
                    "route": pa.array(["primary"] * n),
                    "latency_ms": pa.array(rng.gamma(2.0, 1.0, n)),
                    "prediction": pa.array(rng.random(n)),
                }
                for name, values in extra.items():
                    rows = rows.append_column(name, values)
                return rows

            # A week of earlier traffic already in the history (not timed).
            ws.lake.ingest(log_of(reference.slice(0, 140_000), 0, 7), table="predictions__bench")
            update_history(ws, profile)
            ws.lake.ingest(log_of(window, 7, 1), table="predictions__bench", mode="append")
            begin = time.perf_counter()
            update_history(ws, profile)
            latest = stored_windows(ws, profile, "1d")[-1]
            latest.drift(profile)
            latest.quality_report(profile)
            return time.perf_counter() - begin, len(stored_windows(ws, profile, "1d"))
        finally:
            ws.close()


def main(argv: list[str] | None = None) -> int:
    """Run the drift benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    reference = synthetic(args.rows, 1, shifted=False)
    current = synthetic(args.rows, 2, shifted=True)
    seconds, report, _ = timed_report(reference, current, reference.column_names)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    exact = sorted(report.flagged()) == sorted(SHIFTED)
    print(
        f"drift of {args.rows:,} vs {args.rows:,} rows x 20 columns: {seconds:.2f} s, peak RSS "
        f"{rss:.2f} GB, flagged {sorted(report.flagged())} (exactly the 5 shifted: {exact}) "
        f"(target < {TARGET_S:.0f} s, < {TARGET_RSS_GB:.0f} GB) "
        f"{verdict(seconds < TARGET_S and rss < TARGET_RSS_GB and exact)}",
        flush=True,
    )
    half, _, _ = timed_report(reference, current, reference.column_names[::2])
    print(f"  10 of the 20 columns: {half:.2f} s ({seconds / half:.2f}x for twice the columns)")
    added, days = timed_new_window(reference.slice(0, 200_000), current.slice(0, 100_000))
    print(
        f"a new window of 100,000 predictions added to the stored monitoring history (new log "
        f"files read, hourly buckets stored, the day summed and reported): {added * 1000:.0f} ms, "
        f"{days} day(s) of history (target < {TARGET_WINDOW_S:.0f} s) "
        f"{verdict(added < TARGET_WINDOW_S)}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
