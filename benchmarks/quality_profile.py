"""Benchmark of data profiling: one full profile of a 10M-row x 20-column table version.

Run ``python benchmarks/quality_profile.py [--rows N] [--repeats N]``. Three child processes
run one after another, each a fresh interpreter (this script started again with a hidden
flag): the first writes a synthetic Parquet file, the second ingests it into a temporary
workspace, the third times ``profile_version`` on that version, so the peak RSS it reports is
the profiling's own. Each timed run starts from a catalog without the stored profile. The
script prints one summary line with the median time against its target, PASS or MISS, and
the peak RSS; it exits 0 whenever the benchmark ran, non-zero only if a step crashed.

Columns: eight float64 (two with 10% nulls), four int64, five strings (5, 50, 1,000 and
100,000 distinct values, and a unique order id), a UTC timestamp, a naive timestamp and a
bool.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_ROWS = 10_000_000
CHUNK_ROWS = 1_000_000
TARGET_SECONDS = 10.0
GB = 1_000_000_000


def emit(kind: str, value: Any) -> None:
    """Hand a progress message or a result to the parent as one JSON line."""
    print(json.dumps({kind: value}), flush=True)


def peak_rss_bytes() -> int:
    """Return this process's peak resident set size in bytes (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def generate(path: Path, rows: int) -> dict[str, Any]:
    """Write ``rows`` rows x 20 columns of synthetic data to ``path``, one row group per chunk."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(20240601)
    pools = {
        size: pa.array([f"value_{size}_{i:06d}" for i in range(size)])
        for size in (5, 50, 1_000, 100_000)
    }
    start_us = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
    year_us = 365 * 24 * 3600 * 1_000_000
    done = 0
    writer: Any = None
    try:
        while done < rows:
            n = min(CHUNK_ROWS, rows - done)
            cols: dict[str, Any] = {}
            for i in range(8):
                values = rng.gamma(2.0, 10.0 * (i + 1), n) if i % 2 else rng.normal(i, 1 + i, n)
                mask = rng.random(n) < 0.1 if i in (1, 4) else None
                cols[f"amount_{i}"] = pa.array(values, mask=mask)
            for i in range(4):
                cols[f"qty_{i}"] = pa.array(rng.integers(0, 10 ** (i + 2), n))
            for size, pool in pools.items():
                cols[f"cat_{size}"] = pc.take(pool, pa.array(rng.integers(0, size, n)))
            ids = pc.cast(pa.array(np.arange(done, done + n)), pa.string())
            cols["order_id"] = pc.binary_join_element_wise("order-", ids, "")
            cols["created_at"] = pa.array(
                start_us + rng.integers(0, year_us, n), type=pa.timestamp("us", tz="UTC")
            )
            cols["shipped_at"] = pa.array(
                start_us + np.arange(done, done + n) * 3_000_000, type=pa.timestamp("us")
            )
            cols["is_member"] = pa.array(rng.random(n) < 0.3)
            chunk = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(path, chunk.schema, compression="snappy")
            writer.write_table(chunk, CHUNK_ROWS)
            done += n
            emit("progress", f"generating: {done:,} / {rows:,} rows")
    finally:
        if writer is not None:
            writer.close()
    return {"rows": rows, "cols": 20, "bytes": path.stat().st_size}


def ingest(path: Path, home: Path) -> dict[str, Any]:
    """Ingest the Parquet file into table ``big`` without profiling it on the way in."""
    import plinth

    with plinth.Workspace(home) as ws:
        ws.lake.version_listeners.clear()  # profile in the timed step only
        emit("progress", "ingesting")
        started = time.perf_counter()
        info = ws.lake.ingest(str(path), table="big")
        return {"version": info.version, "seconds": time.perf_counter() - started}


def profile(home: Path, repeats: int) -> dict[str, Any]:
    """Time ``profile_version`` of ``big`` version 0, each run with no stored profile."""
    from sqlalchemy import delete

    import plinth
    from plinth.catalog.models import Profile
    from plinth.quality.profiles import profile_version

    times: list[float] = []
    result: dict[str, Any] = {}
    with plinth.Workspace(home) as ws:
        ws.lake.tables()  # open the catalog and lake before timing
        for run in range(repeats):
            with ws.catalog.session() as session:
                session.execute(delete(Profile).where(Profile.table_name == "big"))
            emit("progress", f"profiling, run {run + 1} of {repeats}")
            started = time.perf_counter()
            result = profile_version(ws.lake, "big", 0)
            times.append(time.perf_counter() - started)
    return {
        "times": times,
        "rows": result["row_count"],
        "cols": len(result["columns"]),
        "rss": peak_rss_bytes(),
        "profile_bytes": len(json.dumps(result)),
    }


def child_main(args: argparse.Namespace) -> None:
    """Run one step in this child process and print its result."""
    if args.child == "generate":
        emit("result", generate(Path(args.path), args.rows))
    elif args.child == "ingest":
        emit("result", ingest(Path(args.path), Path(args.home)))
    elif args.child == "profile":
        emit("result", profile(Path(args.home), args.repeats))
    else:
        raise SystemExit(f"unknown step {args.child!r}")


def run_step(step: str, *extra: str) -> dict[str, Any]:
    """Run ``step`` in a fresh child process, relay its progress, return its result."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", step, *extra]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    result: dict[str, Any] | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            print(line.rstrip("\n"), file=sys.stderr)
            continue
        if "progress" in message:
            print(f"  {step}: {message['progress']}", file=sys.stderr, flush=True)
        elif "result" in message:
            result = message["result"]
    if proc.wait() != 0 or result is None:
        raise SystemExit(f"step {step} failed with exit code {proc.returncode}")
    return result


def parent_main(args: argparse.Namespace) -> int:
    """Generate, ingest and profile in fresh children; print the summary line."""
    root = Path(tempfile.mkdtemp(prefix="plinth-bench-quality-"))
    try:
        path, home = root / "big.parquet", root / "ws"
        data = run_step("generate", "--path", str(path), "--rows", str(args.rows))
        loaded = run_step("ingest", "--path", str(path), "--home", str(home))
        path.unlink()
        r = run_step("profile", "--home", str(home), "--repeats", str(args.repeats))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = statistics.median(r["times"])
    runs = ", ".join(f"{t:.1f}" for t in r["times"])
    label = f"{r['rows'] / 1e6:g}M" if r["rows"] >= 1_000_000 else f"{r['rows']:,}"
    verdict = "PASS" if median < TARGET_SECONDS else "MISS"
    print(
        f"profile {label} x {r['cols']}: {median:.1f} s (target < {TARGET_SECONDS:g} s) {verdict}"
    )
    print(
        f"  runs {runs} s on {os.cpu_count()} cores; peak RSS {r['rss'] / GB:.2f} GB; "
        f"stored profile {r['profile_bytes'] / 1024:.0f} KiB; Parquet "
        f"{data['bytes'] / GB:.2f} GB, ingest {loaded['seconds']:.1f} s"
    )
    return 0


def main() -> int:
    """Parse arguments and run the parent or a child step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate")
    parser.add_argument("--repeats", type=int, default=3, help="timed profile runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
