"""Benchmarks of the online feature store: materialization writes and point-read latency.

Run ``python benchmarks/features_online.py [--rows N] [--calls N] [--only NAME]``:

* ``write``: a materialization-style write of ROWS entities x 25 features (10 float, 10 int,
  5 string) into a fresh SQLite online store, then a second write of newer rows for all of
  them (the update path). Each time runs until the commit; the write-ahead-log checkpoint,
  which the store runs on a background thread, is timed separately right after.
* ``read``: SQLite reads of 1 entity x 25 features and 100 entities x 25 features, CALLS calls
  each on random entities, from a separate store object (as a serving process would).
* ``redis``: the same 1-entity and 100-entity reads on a throwaway ``redis-server`` started on
  loopback (no persistence) and stopped afterwards; skipped when none can be started.

Each figure prints one line with its target and PASS or MISS (the 100-entity Redis read and
the Redis load have no target). The exit code is 0 whenever the benchmarks ran. When other
processes used more than a tenth of the CPUs meanwhile, a note on stderr says the timings may
be inflated.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from common import contention, latencies, verdict

from plinth.features.online import OnlineStore, open_online_store

DEFAULT_ROWS = 1_000_000
DEFAULT_CALLS = 10_000
REDIS_ROWS = 200_000
WARMUP_CALLS = 500
WRITE_ROWS_PER_S = 500_000
READ_1_P99_MS = 1.0
READ_100_P99_MS = 5.0
REDIS_1_P99_MS = 2.0
TTL = timedelta(days=7)
VIEW = "bench"
FLOATS, INTS, STRINGS = 10, 10, 5
BENCHMARKS = ("write", "read", "redis")


# -- data --------------------------------------------------------------------------------------


def make_table(rows: int, seed: int, end: datetime) -> pa.Table:
    """Entities ``E0000000``... in random order, event times in the day before ``end``.

    Values look like hourly weather and flight features: floats with one decimal, small
    integers and short category strings.
    """
    rng = np.random.default_rng(seed)
    ids = pa.array(rng.permutation(rows))
    entity = pc.binary_join_element_wise("E", pc.utf8_lpad(ids.cast(pa.string()), 7, "0"), "")
    end_us = int(end.timestamp() * 1_000_000)
    offsets = rng.integers(0, 86_400_000_000, rows)
    columns: dict[str, Any] = {
        "entity": entity,
        "event_time": pa.array(end_us - offsets, pa.int64()).cast(pa.timestamp("us", "UTC")),
    }
    for i in range(FLOATS):
        columns[f"x{i}"] = pa.array(np.round(rng.normal(50.0, 20.0, rows), 1))
    for i in range(INTS):
        columns[f"n{i}"] = pa.array(rng.integers(0, 1_000, rows))
    categories = np.array(["AA", "DL", "UA", "B6", "EV", "MQ", "N14228", "JFK", "LGA", "EWR"])
    for i in range(STRINGS):
        columns[f"c{i}"] = pa.array(categories[rng.integers(0, len(categories), rows)])
    return pa.table(columns)


def feature_names() -> list[str]:
    """The 25 feature columns of :func:`make_table`."""
    return (
        [f"x{i}" for i in range(FLOATS)]
        + [f"n{i}" for i in range(INTS)]
        + [f"c{i}" for i in range(STRINGS)]
    )


# -- measurements ------------------------------------------------------------------------------


def time_write(store: OnlineStore, table: pa.Table) -> tuple[float, float]:
    """Return the seconds one write of ``table`` takes until its commit, and the seconds of
    the write-ahead-log checkpoint that follows (on a background thread in normal use, run
    here in the foreground right after, so the two never overlap)."""
    start = time.perf_counter()
    written = store.write(VIEW, ["entity"], table, timestamp="event_time")
    seconds = time.perf_counter() - start
    if written != table.num_rows:
        raise RuntimeError(f"wrote {written} rows, expected {table.num_rows}")
    start = time.perf_counter()
    store.checkpoint()  # type: ignore[attr-defined]
    return seconds, time.perf_counter() - start


def percentiles(values: list[float]) -> tuple[float, float]:
    """Return the p50 and p99 of ``values``."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), cuts[98]


def read_calls(
    store: OnlineStore, rows: int, size: int, calls: int, seed: int
) -> Callable[[], Any]:
    """A read of ``size`` random entities, checking every value came back present."""
    rng = random.Random(seed)
    features = feature_names()
    requests = [
        [(f"E{rng.randrange(rows):07d}",) for _ in range(size)] for _ in range(calls + WARMUP_CALLS)
    ]
    position = iter(range(len(requests)))

    def call() -> Any:
        result = store.read(VIEW, requests[next(position)], features, ttl=TTL)
        if result[0].statuses["x0"] != "present":
            raise RuntimeError("a benchmark read found no value")
        return result

    return call


def report_reads(label: str, size: int, values: list[float], target_ms: float | None) -> str:
    """Return the summary line of one read benchmark."""
    p50, p99 = percentiles(values)
    line = (
        f"{label} read {size} entit{'y' if size == 1 else 'ies'} x {len(feature_names())}"
        f" features: p50 {p50:.3f} ms, p99 {p99:.3f} ms over {len(values):,} calls"
    )
    if target_ms is None:
        return line + " (no target)"
    return line + f" (target p99 < {target_ms:g} ms) {verdict(p99 < target_ms)}"


def bench_write(folder: Path, rows: int, notes: list[str]) -> list[str]:
    """Materialize ``rows`` entities into a fresh SQLite store, then update all of them."""
    now = datetime.now(UTC)
    first = make_table(rows, seed=1, end=now - timedelta(hours=2))
    # New values for the same entities, each one hour newer than the stored row.
    update = make_table(rows, seed=2, end=now)
    update = update.set_column(0, "entity", first.column("entity"))
    later = pc.add(first.column("event_time"), pa.scalar(timedelta(hours=1)))
    update = update.set_column(1, "event_time", later)
    lines = []
    with open_online_store(folder / "online.db") as store:
        for label, table in (("first materialization", first), ("update of every row", update)):
            with contention(f"the SQLite write ({label})", notes):
                seconds, checkpoint = time_write(store, table)
            per_s = rows / seconds
            lines.append(
                f"sqlite write ({label}): {rows:,} rows x {len(feature_names())} features in"
                f" {seconds:.2f} s to the commit = {per_s / 1000:,.0f}k rows/s"
                f" (target >= {WRITE_ROWS_PER_S / 1000:,.0f}k rows/s)"
                f" {verdict(per_s >= WRITE_ROWS_PER_S)}; the checkpoint after it took"
                f" {checkpoint:.2f} s"
            )
        file_mb = (folder / "online.db").stat().st_size / 1e6
        lines.append(f"sqlite file: {file_mb:,.0f} MB for {store.count(VIEW):,} entities")
    return lines


def bench_read(folder: Path, rows: int, calls: int, notes: list[str]) -> list[str]:
    """Time SQLite reads from a separate store object on the file ``bench_write`` filled."""
    path = folder / "online.db"
    if not path.exists():
        with open_online_store(path) as store:
            table = make_table(rows, seed=1, end=datetime.now(UTC))
            store.write(VIEW, ["entity"], table, timestamp="event_time")
    lines = []
    with open_online_store(f"sqlite:///{path}") as store:
        for size, target in ((1, READ_1_P99_MS), (100, READ_100_P99_MS)):
            call = read_calls(store, rows, size, calls, seed=size)
            with contention(f"the SQLite {size}-entity reads", notes):
                values = latencies(call, calls, WARMUP_CALLS)
            lines.append(report_reads("sqlite", size, values, target))
    return lines


# -- redis -------------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Start a throwaway redis-server on loopback, yield its URL, stop it afterwards."""
    import redis

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        raise RuntimeError("redis-server not found (install the 'redis-server' package)")
    folder = Path(tempfile.mkdtemp(prefix="plinth-bench-redis-"))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(folder)]
    with open(folder / "redis.log", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {process.returncode}")
            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            try:
                client.ping()
                break
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not answer PING within 15 s") from None
                time.sleep(0.05)
            finally:
                client.close()
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def bench_redis(rows: int, calls: int, notes: list[str]) -> list[str]:
    """Load ``rows`` entities into a throwaway Redis, then time 1- and 100-entity reads."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return ["redis: skipped (the redis package is not installed)"]
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(redis_server())
        except RuntimeError as exc:
            return [f"redis: skipped ({exc})"]
        lines = []
        with open_online_store(url) as store:
            table = make_table(rows, seed=3, end=datetime.now(UTC))
            seconds = time_write(store, table)
            lines.append(
                f"redis write: {rows:,} rows x {len(feature_names())} features in"
                f" {seconds:.2f} s = {rows / seconds / 1000:,.0f}k rows/s (no target)"
            )
            for size, target in ((1, REDIS_1_P99_MS), (100, None)):
                call = read_calls(store, rows, size, calls, seed=size)
                with contention(f"the Redis {size}-entity reads", notes):
                    values = latencies(call, calls, WARMUP_CALLS)
                lines.append(report_reads("redis", size, values, target))
        return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="entities to write")
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help="reads per figure")
    parser.add_argument("--redis-rows", type=int, default=REDIS_ROWS, help="entities in Redis")
    parser.add_argument("--only", choices=BENCHMARKS, help="run one benchmark")
    args = parser.parse_args(argv)
    chosen = [args.only] if args.only else list(BENCHMARKS)
    notes: list[str] = []
    print(
        f"online store benchmarks on {os.cpu_count()} CPUs, Python {sys.version.split()[0]},"
        f" pyarrow {pa.__version__}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="plinth-bench-online-") as tmp:
        folder = Path(tmp)
        if "write" in chosen:
            for line in bench_write(folder, args.rows, notes):
                print(line, flush=True)
        if "read" in chosen:
            for line in bench_read(folder, args.rows, args.calls, notes):
                print(line, flush=True)
    if "redis" in chosen:
        for line in bench_redis(min(args.redis_rows, args.rows), args.calls, notes):
            print(line, flush=True)
    for note in notes:
        print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
