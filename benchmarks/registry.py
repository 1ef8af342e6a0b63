"""Benchmarks of the model registry: loading a version, and the cost of the signature check.

Run ``python benchmarks/registry.py [--trees N] [--features K]``. A LightGBM booster of N trees
over K features (trained on synthetic data) is registered with an example in a fresh
temporary workspace (SQLite catalog, local storage), then:

* ``cold load``: ``load("bench@champion")`` through a new registry (catalog look-up, manifest
  and file reads with their hashes checked, booster parsed), median of 5;
* ``cached load``: ``load("bench@champion")`` again (one catalog query to resolve the alias),
  median of 200;
* ``one-row predict``: ``LoadedModel.predict`` on a one-row DataFrame (signature check,
  reordering, one-thread predict) against the booster's own ``predict`` with one thread on
  the same frame, median of 500 each; the figure is the added time per call.

Each figure prints one line with its target and PASS or MISS; the exit code is 0 whenever it
ran.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import pandas as pd

import plinth
from plinth._core.settings import Settings
from plinth.registry.service import Registry

TARGET_COLD_S = 0.1
TARGET_CACHED_MS = 5.0
TARGET_OVERHEAD_MS = 0.5


def verdict(ok: bool) -> str:
    """Return PASS or MISS."""
    return "PASS" if ok else "MISS"


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """The median wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run the registry benchmarks and print one line per figure."""
    import lightgbm as lgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.normal(size=(20_000, args.features)), columns=[f"f{i}" for i in range(args.features)]
    )
    label = (frame.iloc[:, 0] + rng.normal(size=len(frame)) > 0).astype(int)
    params = {"objective": "binary", "num_threads": 2, "verbosity": -1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(frame, label), num_boost_round=args.trees)
    with tempfile.TemporaryDirectory() as home:
        ws = plinth.Workspace(settings=Settings(home=home, user="bench"))
        info = ws.models.register(booster, "bench", example=frame.head(5))
        ws.models.set_alias("bench", "champion", info.version)
        size = sum(len(ws.artifacts.get_bytes(d)) for d in info.files.values())
        cold = timed(lambda: Registry(ws).load("bench@champion"), 5)
        print(
            f"cold load of a {args.trees}-tree LightGBM booster ({size / 2**20:.1f} MiB): "
            f"median {cold * 1000:.0f} ms (target < {TARGET_COLD_S * 1000:.0f} ms) "
            f"{verdict(cold < TARGET_COLD_S)}",
            flush=True,
        )
        models = ws.models
        loaded = models.load("bench@champion")
        cached = timed(lambda: models.load("bench@champion"), 200) * 1000
        print(
            f"cached load (alias resolved in the catalog): median {cached:.2f} ms "
            f"(target < {TARGET_CACHED_MS:.0f} ms) {verdict(cached < TARGET_CACHED_MS)}",
            flush=True,
        )
        row = frame.iloc[[7]]
        checked = timed(lambda: loaded.predict(row), 500) * 1000
        raw = timed(lambda: booster.predict(row, num_threads=1), 500) * 1000
        overhead = checked - raw
        print(
            f"one-row predict: {checked:.3f} ms through LoadedModel vs {raw:.3f} ms raw, "
            f"signature check and dispatch add {overhead:.3f} ms "
            f"(target < {TARGET_OVERHEAD_MS} ms) {verdict(overhead < TARGET_OVERHEAD_MS)}",
            flush=True,
        )
        ws.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
