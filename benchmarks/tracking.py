"""Benchmarks of metric logging: throughput, training-loop slowdown, and zero points lost.

Run ``python benchmarks/tracking.py [--seconds S] [--metrics K] [--postgres URL]``:

* ``throughput``: a training loop of numpy steps (each about 100 microseconds of matrix work,
  which releases the GIL like a framework's kernels) logs K metrics per step into a fresh
  SQLite workspace. It is timed without logging and with logging, alternated three times;
  the figure is the logged points per second up to the end of the final flush, and the
  slowdown the median loop time with logging against the median without.
* ``lost``: a child process logs as fast as it can and is stopped by SIGTERM after 2 s, and
  another crashes with an exception after 200,000 points; the points in the catalog are
  compared with what each child counted as logged.

With ``--postgres URL`` the throughput run is repeated on that PostgreSQL catalog. Each figure
prints one line with its target and PASS or MISS; the exit code is 0 whenever it ran.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

import plinth
from plinth._core.settings import Settings

TARGET_POINTS_PER_S = 100_000
TARGET_SLOWDOWN = 0.05
ROUNDS = 3


def verdict(ok: bool) -> str:
    """Return PASS or MISS."""
    return "PASS" if ok else "MISS"


def training_loop(
    steps: int, metrics: int, run: plinth.tracking.Run | None, *, each: bool = False, size: int = 96
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


def calibrate(metrics: int) -> tuple[int, float]:
    """Pick the matrix size whose bare step logs ``metrics`` values at the target rate.

    A loop that logs faster than the target would charge logging more than the target asks.
    """
    wanted = metrics / TARGET_POINTS_PER_S
    best = (96, training_loop(1000, metrics, None) / 1000)
    for size in range(64, 257, 8):
        step_s = training_loop(1000, metrics, None, size=size) / 1000
        if abs(step_s - wanted) < abs(best[1] - wanted):
            best = (size, step_s)
    return best


def bench_throughput(
    settings: Settings, seconds: float, metrics: int, label: str, *, each: bool = False
) -> list[str]:
    """Time the loop with and without logging; report points/s and the slowdown."""
    ws = plinth.Workspace(settings=settings)
    size, step_s = calibrate(metrics)
    steps = max(1000, int(seconds / step_s))
    bare, logged, rates = [], [], []
    for _ in range(ROUNDS):
        bare.append(training_loop(steps, metrics, None, size=size))
        run = ws.run("bench", capture=False)
        start = time.perf_counter()
        logged.append(training_loop(steps, metrics, run, each=each, size=size))
        run.end()
        total = time.perf_counter() - start
        rates.append(steps * metrics / total)
    with ws.catalog.engine.connect() as connection:
        stored = connection.execute(text("SELECT sum(count) FROM run_metrics")).scalar_one()
    ws.close()
    expected = ROUNDS * steps * metrics
    rate = statistics.median(rates)
    label = f"{label} {'log_metric per value' if each else 'log_metrics per step'}"
    slowdown = statistics.median(logged) / statistics.median(bare) - 1
    return [
        f"{label} logging: {steps:,} steps x {metrics} metrics ({size}x{size} matrix steps), "
        f"{rate:,.0f} points/s including "
        f"the final flush (target >= {TARGET_POINTS_PER_S:,}) "
        f"{verdict(rate >= TARGET_POINTS_PER_S)}",
        f"{label} loop slowdown: {statistics.median(bare):.2f} s bare vs "
        f"{statistics.median(logged):.2f} s logging, median of {ROUNDS}: {slowdown:+.1%} "
        f"(target < {TARGET_SLOWDOWN:.0%}) {verdict(slowdown < TARGET_SLOWDOWN)}",
        f"{label} points stored: {stored:,} of {expected:,} logged {verdict(stored == expected)}",
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
    parser.add_argument("--postgres", help="also measure on this PostgreSQL catalog URL")
    args = parser.parse_args(argv)
    print(f"tracking benchmarks on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as folder:
        root = Path(folder)
        lines = bench_throughput(
            Settings(home=root / "sqlite", user="bench"), args.seconds, args.metrics, "sqlite"
        )
        lines += bench_throughput(
            Settings(home=root / "each", user="bench"),
            args.seconds,
            args.metrics,
            "sqlite",
            each=True,
        )
        for line in lines:
            print(line, flush=True)
        if args.postgres:
            settings = Settings(home=root / "pg", user="bench", database_url=args.postgres)
            for line in bench_throughput(settings, args.seconds, args.metrics, "postgres"):
                print(line, flush=True)
        for line in bench_lost(root / "lost"):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
