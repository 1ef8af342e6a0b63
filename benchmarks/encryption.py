"""Benchmark: what encrypting prediction logs at rest costs, against plaintext logs.

A prediction-log-shaped table (request id, time, model version, 20 float inputs, a prediction,
latency) is appended in batches the way the log writer flushes them, then read back whole and
scanned for two columns, once into a plaintext table and once with ``encrypt=True`` under a
workspace key. No target is set by the issue beyond "optional"; the figures say what turning
it on costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

import plinth
from plinth.governance.crypto import generate_key

FEATURES = 20
ROUNDS = 3


def log_batch(rows: int, start: int, rng: np.random.Generator) -> pa.Table:
    """One flush of the log writer: ``rows`` answered requests."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    columns: dict[str, pa.Array] = {
        "request_id": pa.array([f"req-{start + i:09d}" for i in range(rows)]),
        "answered_at": pa.array(
            [t0 + timedelta(milliseconds=start + i) for i in range(rows)], pa.timestamp("us", "UTC")
        ),
        "version": pa.array(np.full(rows, 3, dtype=np.int64)),
    }
    for i in range(FEATURES):
        columns[f"x{i}"] = pa.array(rng.standard_normal(rows))
    columns["prediction"] = pa.array(rng.random(rows))
    columns["latency_ms"] = pa.array(rng.random(rows) * 3)
    return pa.table(columns)


def run(home: Path, key: str | None, batches: int, rows: int) -> dict[str, float]:
    """Append ``batches`` flushes, then read; return seconds per operation."""
    extra = {"encryption_key": key} if key else {}
    settings = plinth.Settings(home=home, user="bench", profile_on_ingest=False, **extra)
    rng = np.random.default_rng(0)
    data = [log_batch(rows, b * rows, rng) for b in range(batches)]
    appends = []
    with plinth.Workspace(settings=settings) as ws:
        for table in data:
            start = time.perf_counter()
            ws.lake.ingest(table, table="predictions__bench", checks=False, encrypt=True)
            appends.append(time.perf_counter() - start)
        start = time.perf_counter()
        whole = ws.lake.read("predictions__bench")
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        ws.lake.read("predictions__bench", columns=["x0", "prediction"])
        columns_s = time.perf_counter() - start
    assert whole.num_rows == batches * rows
    return {
        "append_median_s": statistics.median(appends),
        "read_s": read_s,
        "read_two_columns_s": columns_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Print one line per figure, plaintext then encrypted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="log flushes to append")
    parser.add_argument("--rows", type=int, default=10_000, help="rows per flush")
    args = parser.parse_args(argv)
    print(f"prediction log encryption on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    total = args.batches * args.rows
    rounds: dict[str, list[dict[str, float]]] = {"plaintext": [], "encrypted": []}
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as folder:
        # Alternated, three rounds each, best of each figure: the first round of a process
        # also pays for imports and cold caches.
        for index in range(ROUNDS):
            for label, key in (("plaintext", None), ("encrypted", generate_key())):
                home = Path(folder) / f"{label}-{index}"
                rounds[label].append(run(home, key, args.batches, args.rows))
    results = {
        label: {name: min(r[name] for r in figures) for name in figures[0]}
        for label, figures in rounds.items()
    }
    for label, figures in results.items():
        print(
            f"{label} (best of {ROUNDS}): append of {args.rows:,} rows x {FEATURES + 5} "
            "columns median "
            f"{figures['append_median_s'] * 1000:.0f} ms; read of {total:,} rows "
            f"{figures['read_s']:.2f} s; two columns {figures['read_two_columns_s']:.2f} s"
        )
    plain, sealed = results["plaintext"], results["encrypted"]
    print(
        "encrypted / plaintext: append "
        f"{sealed['append_median_s'] / plain['append_median_s']:.2f}x, read "
        f"{sealed['read_s'] / plain['read_s']:.2f}x, two columns "
        f"{sealed['read_two_columns_s'] / plain['read_two_columns_s']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
