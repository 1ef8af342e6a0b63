"""Monitoring benchmarks: drift of 1M current rows against a 1M-row reference, 20 columns.

Data is generated before timing (15 numeric, 5 categorical columns; 5 of them shifted in the
current window). The timed part profiles the reference (fine quantile histograms, category
counts), counts the current window over the same bins and computes every statistic. Peak RSS
is the process's own (``ru_maxrss``), data included. A second figure times counting one new
window of 100k rows against the stored reference (what monitoring adds per window).
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

TARGET_S = 5.0
TARGET_RSS_GB = 2.0
TARGET_WINDOW_S = 1.0


def timed_report(reference, current, columns):  # type: ignore[no-untyped-def]
    """Seconds to profile the reference, count the window and compute the report."""
    begin = time.perf_counter()
    refs = fit_references(reference, columns)
    report = drift_report(refs, window_counts(refs, current))
    return time.perf_counter() - begin, report, refs


def main(argv: list[str] | None = None) -> int:
    """Run the drift benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    reference = synthetic(args.rows, 1, shifted=False)
    current = synthetic(args.rows, 2, shifted=True)
    seconds, report, refs = timed_report(reference, current, reference.column_names)
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
    window = current.slice(0, 100_000)
    begin = time.perf_counter()
    drift_report(refs, window_counts(refs, window))
    added = time.perf_counter() - begin
    print(
        f"a new window of 100,000 rows counted and compared against the stored reference: "
        f"{added * 1000:.0f} ms (target < {TARGET_WINDOW_S:.0f} s) "
        f"{verdict(added < TARGET_WINDOW_S)}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
