"""Benchmarks of the lake: Parquet and CSV ingest throughput, and time-travel read cost.

Run ``python benchmarks/lake.py [--rows N] [--only NAME]``. Every benchmark runs in a fresh
child process (this script, started again with a hidden flag), so the peak RSS it reports is
that benchmark's own, and in a fresh temporary workspace that is removed afterwards. Test data
is generated in yet another child before the measured one starts. The script prints one
summary line per benchmark with its target and PASS or MISS; it exits 0 whenever every
benchmark ran, and non-zero only if one crashed.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import busy_cpu_seconds, contention_note, own_cpu_seconds, verdict

BENCHMARKS = ("parquet", "csv", "timetravel")
DEFAULT_ROWS = 10_000_000
GENERATE_CHUNK_ROWS = 1_000_000
ROW_GROUP_ROWS = 1_000_000
PARQUET_ROWS_PER_S = 2_000_000
PARQUET_RSS_BYTES = 1_500_000_000
CSV_SECONDS = 3.0
CSV_RUNS = 3
TT_VERSIONS = 100
TT_ROWS = 200_000
TT_APPEND_ROWS = 2_000
TT_REPEATS = 5
TT_RATIO = 1.2
GB = 1_000_000_000

Emit = Callable[[str], None]

# -- child side: generation and measurement -------------------------------------------------


def emit_progress(message: str) -> None:
    """Tell the parent what the child is doing (shown next to the spinner)."""
    print(json.dumps({"progress": message}), flush=True)


def emit_result(result: dict[str, Any]) -> None:
    """Hand the child's measurements to the parent."""
    print(json.dumps({"result": result}), flush=True)


def peak_rss_bytes() -> int:
    """Return this process's peak resident set size in bytes (``ru_maxrss`` is KiB on Linux).

    Linux carries the peak of the process image replaced by ``exec`` into ``ru_maxrss``, so a
    child started from a large parent would report the parent's peak. The parent therefore
    stays small: it neither generates nor reads benchmark data.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """Return the user plus system CPU time this process has used, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def generate_parquet(path: Path, rows: int, emit: Emit) -> dict[str, Any]:
    """Write ``rows`` rows x 10 columns of synthetic data to ``path``, one chunk at a time.

    Columns: three int64 (a sequential id, a customer id, a quantity), three float64, three
    low-cardinality strings, a ``timestamp[us, UTC]`` and a bool. Each chunk is written as its
    own row group, so memory stays bounded by the chunk size.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(20240601)
    categories = pa.array([f"category_{i:02d}" for i in range(20)])
    countries = pa.array(["US", "DE", "FR", "GB", "JP", "BR", "IN", "CN", "CA", "AU", "ES", "IT"])
    statuses = pa.array(["new", "paid", "shipped", "delivered", "returned"])
    start_us = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
    year_us = 365 * 24 * 3600 * 1_000_000
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("customer_id", pa.int64()),
            ("quantity", pa.int64()),
            ("price", pa.float64()),
            ("discount", pa.float64()),
            ("category", pa.string()),
            ("country", pa.string()),
            ("status", pa.string()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("is_member", pa.bool_()),
        ]
    )
    done = 0
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        while done < rows:
            n = min(GENERATE_CHUNK_ROWS, rows - done)
            columns = [
                pa.array(np.arange(done, done + n, dtype=np.int64)),
                pa.array(rng.integers(1, 1_000_000, n, dtype=np.int64)),
                pa.array(rng.integers(1, 100, n, dtype=np.int64)),
                pa.array(np.round(rng.gamma(2.0, 25.0, n), 2)),
                pa.array(rng.random(n)),
                pc.take(categories, pa.array(rng.integers(0, len(categories), n))),
                pc.take(countries, pa.array(rng.integers(0, len(countries), n))),
                pc.take(statuses, pa.array(rng.integers(0, len(statuses), n))),
                pa.array(
                    start_us + rng.integers(0, year_us, n, dtype=np.int64),
                    type=pa.timestamp("us", tz="UTC"),
                ),
                pa.array(rng.random(n) < 0.3),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), ROW_GROUP_ROWS)
            done += n
            emit(f"generating Parquet: {done:,} / {rows:,} rows")
    return {"rows": rows, "cols": len(schema), "bytes": path.stat().st_size}


def open_workspace(folder: Path) -> Any:
    """Open a workspace in ``folder`` with its lake ready, so later timings exclude setup."""
    import plinth

    ws = plinth.Workspace(folder)
    ws.lake.tables()
    return ws


def bench_parquet(path: Path, emit: Emit) -> dict[str, Any]:
    """Time one append ingest of the Parquet file at ``path`` into a new table."""
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
        ws = open_workspace(Path(tmp) / "ws")
        try:
            emit("ingesting Parquet")
            cpu, start = cpu_seconds(), time.perf_counter()
            info = ws.lake.ingest(str(path), table="big")
            seconds = time.perf_counter() - start
            cpu = cpu_seconds() - cpu
            rss = peak_rss_bytes()
            cols = len(ws.lake.scan("big").schema)
        finally:
            ws.close()
    return {
        "rows": info.row_count,
        "cols": cols,
        "seconds": seconds,
        "cpu": cpu,
        "rss": rss,
        "files": info.num_files,
        "bytes": info.bytes,
    }


def bench_csv(path: Path, emit: Emit) -> dict[str, Any]:
    """Time ``CSV_RUNS`` ingests of the CSV file at ``path``, each into a fresh workspace."""
    times: list[float] = []
    cpus: list[float] = []
    rows = cols = 0
    for run in range(CSV_RUNS):
        with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
            ws = open_workspace(Path(tmp) / "ws")
            try:
                emit(f"ingesting CSV, run {run + 1} of {CSV_RUNS}")
                cpu, start = cpu_seconds(), time.perf_counter()
                info = ws.lake.ingest(str(path), table="flights")
                times.append(time.perf_counter() - start)
                cpus.append(cpu_seconds() - cpu)
                rows = info.row_count
                cols = len(ws.lake.scan("flights").schema)
            finally:
                ws.close()
    return {"rows": rows, "cols": cols, "times": times, "cpus": cpus, "rss": peak_rss_bytes()}


def _time_reads(ws: Any, table: str, versions: dict[str, int | None]) -> dict[str, Any]:
    """Read each version once untimed, then ``TT_REPEATS`` times interleaved; return timings."""
    timings: dict[str, list[float]] = {label: [] for label in versions}
    rows: dict[str, int] = {}
    for label, version in versions.items():
        rows[label] = ws.lake.read(table, version=version).num_rows
    for _ in range(TT_REPEATS):
        for label, version in versions.items():
            start = time.perf_counter()
            ws.lake.read(table, version=version)
            timings[label].append(time.perf_counter() - start)
    return {"times": timings, "rows": rows}


def bench_timetravel(emit: Emit) -> dict[str, Any]:
    """Time reading version 0 against the latest, for overwrite and append histories."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(7)
    base = {
        "id": pa.array(np.arange(TT_ROWS, dtype=np.int64)),
        "value": pa.array(rng.random(TT_ROWS)),
        "label": pa.array([f"label_{i % 50}" for i in range(TT_ROWS)]),
        "at": pa.array(
            1_704_067_200_000_000 + np.arange(TT_ROWS, dtype=np.int64) * 1_000_000,
            type=pa.timestamp("us", tz="UTC"),
        ),
    }
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
        ws = open_workspace(Path(tmp) / "ws")
        try:
            for v in range(TT_VERSIONS):
                emit(f"overwrite versions: {v + 1} / {TT_VERSIONS}")
                data = pa.table({**base, "version": pa.array(np.full(TT_ROWS, v, np.int64))})
                ws.lake.ingest(data, table="t", mode="overwrite")
            latest = ws.lake.table("t").latest
            emit("reading overwrite versions")
            out["overwrite"] = {
                **_time_reads(ws, "t", {"v0": 0, "latest": None}),
                "latest_version": latest.version if latest else None,
                "cols": len(base) + 1,
            }
            small = {k: col.slice(0, TT_APPEND_ROWS) for k, col in base.items()}
            for v in range(TT_VERSIONS):
                emit(f"append versions: {v + 1} / {TT_VERSIONS}")
                data = pa.table(
                    {**small, "version": pa.array(np.full(TT_APPEND_ROWS, v, np.int64))}
                )
                ws.lake.ingest(data, table="a", mode="append")
            latest = ws.lake.table("a").latest
            emit("reading append versions")
            out["append"] = {
                **_time_reads(ws, "a", {"v0": 0, "latest": None}),
                "latest_version": latest.version if latest else None,
                "latest_files": latest.num_files if latest else None,
            }
        finally:
            ws.close()
    out["rss"] = peak_rss_bytes()
    return out


def child_main(args: argparse.Namespace) -> None:
    """Run one step in this (child) process and report its result on stdout."""
    if args.child == "generate":
        emit_result(generate_parquet(Path(args.path), args.rows, emit_progress))
    elif args.child == "parquet":
        emit_result(bench_parquet(Path(args.path), emit_progress))
    elif args.child == "csv":
        emit_result(bench_csv(Path(args.path), emit_progress))
    elif args.child == "timetravel":
        emit_result(bench_timetravel(emit_progress))
    else:
        raise SystemExit(f"unknown step {args.child!r}")


# -- parent side: orchestration and reporting -----------------------------------------------


class StepFailed(RuntimeError):
    """A child process exited with an error or without a result."""


#: Settings that point a workspace somewhere else; children never inherit them.
LOCATION_SETTINGS = (
    "PLINTH_HOME",
    "PLINTH_CONFIG",
    "PLINTH_DATABASE_URL",
    "PLINTH_STORAGE_URL",
    "PLINTH_CONTRACTS_DIR",
)


def child_env() -> dict[str, str]:
    """Return the environment for children: this one without the location settings.

    The benchmarks measure a local workspace in a temporary folder whatever the caller has
    configured; other ``PLINTH_*`` settings (such as ``PLINTH_PROFILE_ON_INGEST``) apply.
    """
    return {k: v for k, v in os.environ.items() if k not in LOCATION_SETTINGS}


def passed_settings() -> list[str]:
    """Return the ``PLINTH_*`` settings the children inherit, as ``NAME=value``."""
    return sorted(f"{k}={v}" for k, v in child_env().items() if k.startswith("PLINTH_"))


def run_step(
    step: str, describe: Callable[[str], None], *extra: str, notes: list[str] | None = None
) -> dict[str, Any]:
    """Run ``step`` in a fresh child process and return its result, relaying its progress.

    With ``notes``, a warning is appended there when other processes competed for the CPUs
    while the child ran (the machine's CPU time minus this process tree's).
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--child", step, *extra]
    busy0, own0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="plinth-bench-cwd-") as cwd:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, cwd=cwd, env=child_env()
        )
        result: dict[str, Any] | None = None
        assert proc.stdout is not None
        for line in _lines(proc.stdout):
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                print(line, file=sys.stderr)
                continue
            if "progress" in message:
                describe(message["progress"])
            elif "result" in message:
                result = message["result"]
        code = proc.wait()
    if code != 0 or result is None:
        raise StepFailed(f"{step} exited with code {code}")
    busy1, own1, wall1 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    if notes is not None and busy0 is not None and busy1 is not None:
        note = contention_note(step, (busy1 - busy0) - (own1 - own0), wall1 - wall0)
        if note:
            notes.append(note)
    return result


def _lines(stream: Any) -> Iterator[str]:
    for line in stream:
        line = line.rstrip("\n")
        if line:
            yield line


def rate(rows_per_s: float) -> str:
    """Format a rows-per-second figure in millions, e.g. ``2.4M rows/s``."""
    return f"{rows_per_s / 1e6:.2f}M rows/s"


def ms(seconds: float) -> str:
    """Format seconds as milliseconds."""
    return f"{seconds * 1000:.1f} ms"


def report_parquet(r: dict[str, Any]) -> list[str]:
    """Return the summary line of the Parquet benchmark."""
    per_s = r["rows"] / r["seconds"]
    ok = per_s >= PARQUET_ROWS_PER_S and r["rss"] < PARQUET_RSS_BYTES
    return [
        f"parquet->delta append: {r['rows']:,} rows x {r['cols']} cols in {r['seconds']:.1f} s"
        f" = {rate(per_s)} (cpu {r['cpu']:.1f} s), peak RSS {r['rss'] / GB:.2f} GB"
        f" (target >= {PARQUET_ROWS_PER_S / 1e6:g}M rows/s, RSS < {PARQUET_RSS_BYTES / GB:g} GB)"
        f" {verdict(ok)}"
    ]


def report_csv(r: dict[str, Any]) -> list[str]:
    """Return the summary line of the CSV benchmark."""
    median = statistics.median(r["times"])
    cpu = statistics.median(r["cpus"])
    runs = ", ".join(f"{t:.2f}" for t in r["times"])
    return [
        f"csv->delta append (flights.csv.zip): {r['rows']:,} rows x {r['cols']} cols,"
        f" median of {len(r['times'])} in {median:.2f} s (runs {runs} s)"
        f" = {rate(r['rows'] / median)} (cpu {cpu:.2f} s), peak RSS {r['rss'] / GB:.2f} GB"
        f" (target < {CSV_SECONDS:g} s) {verdict(median < CSV_SECONDS)}"
    ]


def report_timetravel(r: dict[str, Any]) -> list[str]:
    """Return the summary lines of the time-travel benchmark (the append line has no target)."""
    o, a = r["overwrite"], r["append"]
    o_v0, o_latest = (statistics.median(o["times"][k]) for k in ("v0", "latest"))
    a_v0, a_latest = (statistics.median(a["times"][k]) for k in ("v0", "latest"))
    ratio = o_v0 / o_latest
    return [
        f"time travel read, {TT_VERSIONS} overwrite versions of {o['rows']['v0']:,} rows"
        f" x {o['cols']} cols: version 0 {ms(o_v0)} vs latest (v{o['latest_version']})"
        f" {ms(o_latest)}, median of {TT_REPEATS}, ratio {ratio:.2f}"
        f" (target <= {TT_RATIO:g}) {verdict(ratio <= TT_RATIO)}",
        f"time travel read, {TT_VERSIONS} append versions of {TT_APPEND_ROWS:,} rows:"
        f" version 0 ({a['rows']['v0']:,} rows) {ms(a_v0)} vs latest"
        f" (v{a['latest_version']}, {a['rows']['latest']:,} rows in {a['latest_files']} files)"
        f" {ms(a_latest)}, median of {TT_REPEATS}, ratio {a_v0 / a_latest:.2f}"
        " (no target: the versions hold different row counts)",
    ]


def run_benchmark(
    name: str, rows: int, data_root: Path, describe: Callable[[str], None], notes: list[str]
) -> list[str]:
    """Run one benchmark (generating its data first if needed); return its summary lines."""
    if name == "parquet":
        path = data_root / "big.parquet"
        run_step("generate", describe, "--path", str(path), "--rows", str(rows))
        try:
            result = run_step("parquet", describe, "--path", str(path), notes=notes)
        finally:
            path.unlink(missing_ok=True)
        return report_parquet(result)
    if name == "csv":
        from plinth.examples.flights import data_dir

        path = data_dir() / "flights.csv.zip"
        return report_csv(run_step("csv", describe, "--path", str(path), notes=notes))
    return report_timetravel(run_step("timetravel", describe, notes=notes))


def parent_main(args: argparse.Namespace) -> int:
    """Run the selected benchmarks, each in a fresh child, and print their summaries."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    settings = passed_settings()
    if settings:
        console.print(f"settings in effect: {', '.join(settings)}", highlight=False)
    selected = [args.only] if args.only else list(BENCHMARKS)
    crashed = False
    data_root = Path(tempfile.mkdtemp(prefix="plinth-bench-data-"))
    try:
        for name in selected:
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                refresh_per_second=4,
            ) as progress:
                task = progress.add_task(f"{name}: starting", total=None)

                def describe(text: str, name: str = name, task: Any = task) -> None:
                    progress.update(task, description=f"{name}: {text}")

                notes: list[str] = []
                try:
                    lines = run_benchmark(name, args.rows, data_root, describe, notes)
                except StepFailed as exc:
                    crashed = True
                    lines = [f"{name}: CRASHED ({exc})"]
            for line in lines:
                print(line, flush=True)
            for note in notes:
                console.print(note, style="yellow", highlight=False)
    finally:
        shutil.rmtree(data_root, ignore_errors=True)
    return 1 if crashed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help=f"rows of the generated Parquet file (default {DEFAULT_ROWS:,})",
    )
    parser.add_argument("--only", choices=BENCHMARKS, help="run only this benchmark")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: run as the parent, or as a child when started with the hidden flag."""
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
