"""Benchmarks of the pipeline engine: a 10-step no-op pipeline, uncached and cached.

Run ``python benchmarks/pipelines.py [--steps N] [--repeat N]``:

* ``first run``: a chain of STEPS no-op steps (each takes the previous step's output), run
  once on a fresh workspace (catalog created beforehand) in a fresh process, so the fork
  server starts cold: tracing, lint, catalog records, a process per step, outputs stored.
  Target: under 1 s end to end. The median of REPEAT fresh processes is reported.
* ``cached step``: the same pipeline again, every step a cache hit (no process starts);
  the whole run divided by the number of steps. Target: under 20 ms per step.
* Figures without a target: the same first run with ``start_method="fork"`` (forks of the
  runner itself, for comparison), a warm re-run with a new parameter (every step runs, the
  fork server already up), and ``plinth pipeline run`` as a command (interpreter start
  included).

Each figure prints one line with its target and PASS or MISS. The exit code is 0 whenever
the benchmarks ran. When other processes used more than a tenth of the CPUs meanwhile, a note
on stderr says the timings may be inflated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import contention, verdict

DEFAULT_STEPS = 10
DEFAULT_REPEAT = 5
FIRST_RUN_S = 1.0
CACHED_STEP_MS = 20.0
MODULE = "bench_chain"


def module_source(steps: int) -> str:
    """A module with ``steps`` distinct no-op steps chained by one pipeline."""
    lines = ["from plinth.pipelines import pipeline, step", ""]
    for i in range(steps):
        lines += ["", "@step", f"def step_{i}(value: int) -> int:", "    return value", ""]
    lines += ["", "@pipeline", "def chain(seed: int = 0):", "    value = seed"]
    lines += [f"    value = step_{i}(value)" for i in range(steps)]
    lines += ["    return value", ""]
    return "\n".join(lines)


def child(folder: Path, home: Path, start_method: str) -> dict[str, float]:
    """Measure in this (fresh) process: first run, warm re-run, cached re-runs."""
    sys.path.insert(0, str(folder))
    import plinth
    from plinth.pipelines import run
    from plinth.pipelines.executors.local import LocalExecutor

    with plinth.Workspace(home) as ws:
        ws.init()
        start = time.perf_counter()
        first = run(f"{MODULE}:chain", ws=ws, executor=LocalExecutor(start_method=start_method))
        first_s = time.perf_counter() - start
        assert first.count("succeeded") == len(first.steps), first.steps
        start = time.perf_counter()
        warm = run(
            f"{MODULE}:chain", {"seed": 1}, ws=ws, executor=LocalExecutor(start_method=start_method)
        )
        warm_s = time.perf_counter() - start
        assert warm.count("succeeded") == len(warm.steps)
        cached = []
        for _ in range(5):
            start = time.perf_counter()
            again = run(f"{MODULE}:chain", ws=ws)
            cached.append(time.perf_counter() - start)
            assert again.count("cached") == len(again.steps)
    return {"first": first_s, "warm": warm_s, "cached": statistics.median(cached)}


def measure(folder: Path, start_method: str) -> dict[str, float]:
    """Run :func:`child` in a fresh interpreter on a fresh workspace."""
    home = Path(tempfile.mkdtemp(prefix="ws-", dir=folder))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), str(home), start_method],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli_seconds(folder: Path) -> float:
    """Wall time of ``plinth pipeline run`` as a command on a fresh, initialised workspace."""
    home = Path(tempfile.mkdtemp(prefix="ws-", dir=folder))
    plinth = [sys.executable, "-m", "plinth.cli.main"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    subprocess.run([*plinth, "init", "--home", str(home)], env=env, check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run(
        [*plinth, "pipeline", "run", f"{MODULE}:chain", "--home", str(home)],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps in the chain")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="fresh processes")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, home, method = args.child
        print(json.dumps(child(Path(folder), Path(home), method)))
        return 0
    notes: list[str] = []
    print(
        f"pipeline benchmarks on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{args.steps}-step chain, median of {args.repeat} fresh processes",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="plinth-bench-pipelines-") as tmp:
        folder = Path(tmp)
        (folder / f"{MODULE}.py").write_text(module_source(args.steps))
        results: dict[str, list[dict[str, float]]] = {"forkserver": [], "fork": []}
        with contention("the pipeline runs", notes):
            for _ in range(args.repeat):
                for method in results:
                    results[method].append(measure(folder, method))
            command = statistics.median(cli_seconds(folder) for _ in range(args.repeat))

        def median(method: str, key: str) -> float:
            return statistics.median(r[key] for r in results[method])

        first = median("forkserver", "first")
        print(
            f"first run, {args.steps} no-op steps (uncached, cold fork server): {first:.3f} s "
            f"(target < {FIRST_RUN_S:g} s) {verdict(first < FIRST_RUN_S)}",
            flush=True,
        )
        cached = median("forkserver", "cached")
        per_step = cached / args.steps * 1000
        print(
            f"cached step: {per_step:.1f} ms per step ({cached * 1000:.0f} ms for the fully "
            f"cached run) (target < {CACHED_STEP_MS:g} ms) "
            f"{verdict(per_step < CACHED_STEP_MS)}",
            flush=True,
        )
        print(
            f"first run with start_method='fork': {median('fork', 'first'):.3f} s (no target)",
            flush=True,
        )
        warm = median("forkserver", "warm")
        print(
            f"warm re-run, every step runs (fork server up): {warm:.3f} s = "
            f"{warm / args.steps * 1000:.0f} ms per step (no target)",
            flush=True,
        )
        print(
            f"'plinth pipeline run' as a command, interpreter start included: {command:.2f} s "
            "(no target)",
            flush=True,
        )
    for note in notes:
        print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
