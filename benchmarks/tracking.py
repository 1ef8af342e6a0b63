"""Benchmarks of metric logging: throughput, training-loop slowdown, and zero points lost.

Run ``python benchmarks/tracking.py [--seconds S] [--metrics K] [--points N] [--postgres URL]``:

* ``throughput``: one thread logs POINTS points, K per ``log_metrics`` call, as fast as it
  can; the figure is points per second up to the end of the final flush (median of 3).
* ``slowdown``: a training loop of one-thread numpy steps, sized so that logging K metrics
  per step means 100,000 points/s, is timed without and with logging, alternated three
  times; the figure is the median loop time with logging (until the final flush ends)
  against the median without. Once with ``log_metrics`` per step, once with ``log_metric``
  per value.
* ``lost``: a child process logs as fast as it can and is stopped by SIGTERM after 2 s, and
  another crashes with an exception after 200,000 points; the points in the catalog are
  compared with what each child counted as logged.

With ``--postgres URL`` the throughput and slowdown runs are repeated on that PostgreSQL
catalog. Each figure
prints one line with its target and PASS or MISS; the exit code is 0 whenever it ran.
"""

from __future__ import annotations

import os

# One BLAS thread: a multi-threaded matmul on a shared 2-core machine swings by 2x between
# rounds, which would drown a 5% effect. The training loop then uses one core, as a
# data-loader-bound or GIL-bound Python training loop does.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import verdict
from sqlalchemy import text

import plinth
from plinth._core.settings import Settings

TARGET_POINTS_PER_S = 100_000
TARGET_SLOWDOWN = 0.05
ROUNDS = 9


def training_loop(
    steps: int, metrics: int, run: Any, *, each: bool = False, size: int = 96
) -> float:
    """Run ``steps`` steps of matrix work, logging ``metrics`` values per step to ``run``.

    ``each`` logs them with one ``log_metric`` call per value instead of one ``log_metrics``.
    """
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((size, size))
    batch = rng.standard_normal((size, size))
    keys = [f"m{i}" for i in range(metrics)]
    start = time.perf_counter()
    for step in range(steps):
        batch = np.tanh(batch @ weights)
        if run is not None:
            loss = float(batch[0, 0])
            if each:
                for key in keys:
                    run.log_metric(key, loss, step=step)
            else:
                run.log_metrics(dict.fromkeys(keys, loss), step=step)
    return time.perf_counter() - start


class _NoLogging:
    """A logger whose calls do nothing: what the loop's own logging code costs."""

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Do nothing."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Do nothing."""


def calibrate(metrics: int) -> tuple[int, float]:
    """Pick the largest matrix size whose bare step logs ``metrics`` values at no less than
    the target rate.

    A loop that logs faster than the target would charge logging more than the target asks;
    one that logs slower would not measure the target rate.
    """
    wanted = metrics / TARGET_POINTS_PER_S
    best = (64, training_loop(1000, metrics, None, size=64) / 1000)
    for size in range(66, 257, 2):
        # The median, not the fastest, of five timings: the fastest settled on sizes whose
        # rounds then logged at 95k points/s.
        times = [training_loop(500, metrics, None, size=size) for _ in range(5)]
        step_s = statistics.median(times) / 500
        if step_s > wanted:
            break
        best = (size, step_s)
    return best


def bench_slowdown(
    settings: Settings, seconds: float, metrics: int, label: str, *, each: bool = False
) -> list[str]:
    """Time a loop that logs at the target rate with and without logging, alternating."""
    ws = plinth.Workspace(settings=settings)
    size, step_s = calibrate(metrics)
    steps = max(1000, int(seconds / step_s))
    bare, logged, own, run_ids = [], [], [], []
    for _ in range(ROUNDS):
        bare.append(training_loop(steps, metrics, None, size=size))
        own.append(training_loop(steps, metrics, _NoLogging(), each=each, size=size))
        run = ws.run("bench", capture=False)
        run_ids.append(run.id)
        start = time.perf_counter()
        training_loop(steps, metrics, run, each=each, size=size)
        run.end()
        logged.append(time.perf_counter() - start)
    with ws.catalog.engine.connect() as connection:
        stored = sum(
            connection.execute(
                text("SELECT coalesce(sum(count), 0) FROM run_metrics WHERE run_id = :run"),
                {"run": run_id},
            ).scalar_one()
            for run_id in run_ids
        )
    ws.close()
    expected = ROUNDS * steps * metrics
    label = f"{label} {'log_metric per value' if each else 'log_metrics per step'}"
    # Each logged round is compared with the bare round just before it: on a shared machine
    # the speed of the core drifts between rounds, and a paired ratio cancels that drift.
    ratios = sorted(b / a - 1 for a, b in zip(bare, logged, strict=True))
    slowdown = statistics.median(ratios)
    # What the loop's own logging code costs with a logger that does nothing (building the
    # dict of values, the float conversion, the call): inside the figure, not Plinth's work.
    baseline = statistics.median(b / a - 1 for a, b in zip(bare, own, strict=True))
    rate = steps * metrics / statistics.median(logged)
    return [
        f"{label} loop slowdown: {steps:,} steps x {metrics} metrics ({size}x{size} matmul "
        f"steps), {statistics.median(bare):.2f} s bare vs {statistics.median(logged):.2f} s "
        f"logging at {rate:,.0f} points/s (until the end of the final flush), median of "
        f"{ROUNDS} paired rounds: {slowdown:+.1%} (rounds {ratios[0]:+.1%} to "
        f"{ratios[-1]:+.1%}; the loop's own logging code with a logger that does nothing: "
        f"{baseline:+.1%}) (target < {TARGET_SLOWDOWN:.0%}) "
        f"{verdict(slowdown < TARGET_SLOWDOWN)}",
        f"{label} points stored: {stored:,} of {expected:,} logged {verdict(stored == expected)}",
    ]


def bench_throughput(settings: Settings, points: int, metrics: int, label: str) -> list[str]:
    """Log as fast as possible from one thread; points/s up to the end of the final flush."""
    ws = plinth.Workspace(settings=settings)
    keys = [f"m{i}" for i in range(metrics)]
    rates = []
    for _ in range(ROUNDS):
        run = ws.run("bench", capture=False)
        start = time.perf_counter()
        for step in range(points // metrics):
            run.log_metrics(dict.fromkeys(keys, step * 0.5), step=step)
        run.end()
        rates.append(points / (time.perf_counter() - start))
    ws.close()
    rate = statistics.median(rates)
    return [
        f"{label} logging throughput: {points:,} points ({metrics} per log_metrics call), "
        f"{rate:,.0f} points/s including the final flush, median of {ROUNDS} "
        f"(target >= {TARGET_POINTS_PER_S:,}) {verdict(rate >= TARGET_POINTS_PER_S)}"
    ]


CHILD = """
import pathlib, sys
import plinth
counter = pathlib.Path(sys.argv[1])
logged = 0
with plinth.Workspace().run("lost", capture=False) as run:
    print(run.id, flush=True)
    try:
        while True:
            run.log_metric("x", float(logged), step=logged)
            logged += 1
            if sys.argv[2] == "crash" and logged == 200_000:
                raise RuntimeError("crash")
    finally:
        counter.write_text(str(logged))
"""


def bench_lost(home: Path) -> list[str]:
    """Count stored points after SIGTERM and after a crash against what the child logged."""
    lines = []
    env = {**os.environ, "PLINTH_HOME": str(home)}
    for mode in ("sigterm", "crash"):
        counter = home.parent / f"{mode}.count"
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CHILD), str(counter), mode],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        if mode == "sigterm":
            time.sleep(2.0)
            child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=120)
        logged = int(counter.read_text())
        ws = plinth.Workspace(home)
        with ws.catalog.engine.connect() as connection:
            stored = connection.execute(
                text("SELECT sum(count) FROM run_metrics WHERE run_id = :run"),
                {"run": run_id},
            ).scalar_one()
        ws.close()
        # A signal can land after log_metric returned but before the child counted it.
        ok = logged <= stored <= logged + 1
        lines.append(
            f"points lost after {mode} (exit {code}): {logged:,} logged, {stored:,} stored "
            f"(target: none lost) {verdict(ok)}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="loop length per round")
    parser.add_argument("--metrics", type=int, default=10, help="metrics logged per step")
    parser.add_argument(
        "--wide-metrics", type=int, default=100, help="metrics per step of the wide loop"
    )
    parser.add_argument("--points", type=int, default=2_000_000, help="points per throughput run")
    parser.add_argument("--postgres", help="also measure on this PostgreSQL catalog URL")
    args = parser.parse_args(argv)
    print(f"tracking benchmarks on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as folder:
        root = Path(folder)
        sqlite = Settings(home=root / "sqlite", user="bench")
        lines = bench_throughput(sqlite, args.points, args.metrics, "sqlite")
        lines += bench_slowdown(sqlite, args.seconds, args.metrics, "sqlite")
        lines += bench_slowdown(sqlite, args.seconds, args.metrics, "sqlite", each=True)
        # The same 100k points/s logged 100 per step (per-layer statistics, many heads): the
        # per-call costs spread over more points.
        lines += bench_slowdown(sqlite, args.seconds, args.wide_metrics, "sqlite (wide)")
        if args.postgres:
            settings = Settings(home=root / "pg", user="bench", database_url=args.postgres)
            lines += bench_throughput(settings, args.points, args.metrics, "postgres")
            lines += bench_slowdown(settings, args.seconds, args.metrics, "postgres")
        for line in lines:
            print(line, flush=True)
        for line in bench_lost(root / "lost"):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
