"""Benchmark: contract checks on 10M rows x 20 columns with 40 checks.

Targets (docs/benchmarks.md): >= 5M rows/s on 2 cores, peak RSS < 2 GB.

Two figures are printed:

* ``checks``: the row checks alone (DuckDB over Arrow batches of 1M rows read from Parquet),
  which is what the target is about; the time to decode the Parquet batches is printed
  beside it but not counted;
* ``ingest+checks``: a full ingest of the same file into a table with the contract (checks,
  Delta write and catalog), for context; its speed is bounded by the Delta write.

Run: ``.venv/bin/python benchmarks/quality.py [--rows N] [--only checks|ingest]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = 10_000_000
TARGET_RATE = 5_000_000
TARGET_RSS_GB = 2.0


def contract_yaml() -> str:
    """Forty checks over twenty columns: ranges, not-null, sets, regex, lengths and SQL."""
    lines = ["table: big", "columns:"]
    for i in range(8):
        lines.append(f"  f{i}: {{min: -10.0, max: 10.0}}")  # 16 checks
    for i in range(6):
        lines.append(f"  i{i}: {{not_null: true, min: 0, max: 1000000}}")  # 18 checks
    lines.append("  s0: {not_null: true, allowed: [EWR, JFK, LGA, BOS]}")  # 2
    lines.append("  s1: {regex: '^N[0-9A-Z]+$', max_length: 6}")  # 2
    lines.append("checks:")
    lines.append("  - {name: f_sum, sql: 'f0 + f1 < 100'}")  # 1
    lines.append("  - {name: i_order, sql: 'i0 <= i1 + 2000000'}")  # 1
    return "\n".join(lines) + "\n"


def make_parquet(path: Path, rows: int) -> None:
    """Write ``rows`` rows x 20 columns in 1M-row row groups (generation is not timed)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    chunk = 1_000_000
    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        cols: dict[str, object] = {f"f{i}": rng.normal(size=n) for i in range(8)}
        cols.update({f"i{i}": rng.integers(0, 1_000_000, size=n) for i in range(6)})
        cols["s0"] = pa.array(rng.choice(["EWR", "JFK", "LGA", "BOS"], size=n))
        cols["s1"] = pa.array(rng.choice(["N123AB", "N9XY", "N77"], size=n))
        cols["ts"] = pa.array(
            np.datetime64("2024-01-01") + rng.integers(0, 10**6, size=n).astype("timedelta64[s]")
        )
        cols["b"] = rng.integers(0, 2, size=n).astype(bool)
        cols["g0"] = rng.normal(size=n)
        cols["g1"] = rng.normal(size=n)
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=chunk)
    assert writer is not None
    writer.close()


def run_checks(path: str) -> dict[str, float]:
    """Time the row checks over the file, batch by batch (in this process)."""
    import duckdb
    import pyarrow.parquet as pq

    from plinth.quality.checks import RowEvaluator, validate
    from plinth.quality.contracts import parse_contract

    contract = parse_contract(contract_yaml())
    assert len(contract.row_checks()) == 40, len(contract.row_checks())
    parquet = pq.ParquetFile(path)
    connection = duckdb.connect()
    validate(contract, parquet.schema_arrow, connection)
    evaluator = RowEvaluator(contract, parquet.schema_arrow, connection)
    rows = failed = 0
    seconds = 0.0
    started = time.perf_counter()
    for batch in parquet.iter_batches(batch_size=1 << 20):
        begin = time.perf_counter()
        verdict = evaluator.evaluate(batch)
        seconds += time.perf_counter() - begin
        rows += batch.num_rows
        failed += int(verdict.failed_rows.size)
    total = time.perf_counter() - started
    return {"rows": rows, "failed": failed, "seconds": seconds, "with_decode": total}


def run_ingest(path: str) -> dict[str, float]:
    """Time a full ingest of the file into a table that has the contract."""
    import plinth

    with tempfile.TemporaryDirectory() as home:
        ws = plinth.Workspace(home)
        ws.quality.apply(contract_yaml())
        ws.lake.version_listeners.clear()  # profiling is measured by quality_profile.py
        started = time.perf_counter()
        info = ws.lake.ingest(path, table="big")
        seconds = time.perf_counter() - started
        ws.close()
    return {"rows": info.rows_added, "failed": 0, "seconds": seconds}


def child(kind: str, path: str) -> None:
    """Run one measurement and print it as JSON with this process's peak RSS."""
    result = run_checks(path) if kind == "checks" else run_ingest(path)
    result["rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps(result))


def main() -> None:
    """Generate the data, then measure each part in a fresh process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--only", choices=["checks", "ingest"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from rich.console import Console

    console = Console(highlight=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.parquet"
        with console.status(f"Generating {args.rows:,} rows x 20 columns"):
            make_parquet(path, args.rows)
        for kind in [args.only] if args.only else ["checks", "ingest"]:
            with console.status(f"Measuring {kind}"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", kind, str(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rate = result["rows"] / result["seconds"]
            ok = rate >= TARGET_RATE and result["rss_gb"] < TARGET_RSS_GB
            verdict = "PASS" if ok else "MISS"
            if kind == "ingest":
                verdict = "(context, no target)"
            extra = ""
            if "with_decode" in result:
                extra = f" [{result['with_decode']:.2f} s with Parquet decode]"
            console.print(
                f"{kind}: {result['rows']:,} rows x 20 cols, 40 checks in "
                f"{result['seconds']:.2f} s = {rate / 1e6:.2f}M rows/s, peak RSS "
                f"{result['rss_gb']:.2f} GB (target >= {TARGET_RATE / 1e6:.0f}M rows/s, "
                f"RSS < {TARGET_RSS_GB:.0f} GB) {verdict}{extra}"
            )


if __name__ == "__main__":
    main()
