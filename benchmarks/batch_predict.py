"""Benchmark: batch inference (``plinth predict``) of a LightGBM model over a 1M-row table.

The workspace holds a 1M-row feature source (``activity``: 100k users x 5 features over 90
days, one view with a 30-day TTL, service ``bench``) and a 1M-row spine table (``requests``:
user, event time, two numeric and two categorical columns). Two LightGBM models (100 trees,
31 leaves, binary) are trained on a 50k-row point-in-time training set:

* ``with features``: ``bench:1`` takes the spine's columns and the 5 features, so every
  chunk is joined point-in-time to the source before it is scored;
* ``table only``: ``plain:1`` takes the spine's columns alone (reading, scoring, writing).

Each is run once, local executor, ``--chunk-rows`` rows per chunk (default 100,000), in a
fresh process, and reports rows/s for the whole job (read, join, score, one Delta commit)
and the process's peak RSS. There is no target yet: the figures are for reference.

Run: ``.venv/bin/python benchmarks/batch_predict.py [--rows 1000000] [--chunk-rows 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import contention

USERS = 100_000
FEATURES = 5
TRAIN_ROWS = 50_000
CARRIERS = [f"C{i:02d}" for i in range(16)]
ORIGINS = ["EWR", "JFK", "LGA"]


def spine(rows: int, seed: int) -> object:
    """Spine rows: user, event time over 100 days, hour, distance, carrier, origin."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    seconds = rng.integers(0, 100 * 24 * 3600, size=rows).astype("timedelta64[s]")
    return pa.table(
        {
            "user": rng.integers(0, USERS, size=rows),
            "event_timestamp": pa.array(start + seconds, type=pa.timestamp("us", "UTC")),
            "hour": rng.integers(0, 24, size=rows),
            "distance": rng.gamma(2.0, 500.0, size=rows),
            "carrier": pa.array(rng.choice(CARRIERS, size=rows)),
            "origin": pa.array(rng.choice(ORIGINS, size=rows)),
        }
    )


def build(home: Path, rows: int) -> None:
    """Ingest the source and the spine, apply the definitions, train and register models."""
    import lightgbm as lgb
    import numpy as np
    import pyarrow as pa

    import plinth
    from plinth import Entity, FeatureService, FeatureView

    rng = np.random.default_rng(7)
    ws = plinth.Workspace(home)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    seconds = rng.integers(0, 90 * 24 * 3600, size=rows).astype("timedelta64[s]")
    source = {
        "user": rng.integers(0, USERS, size=rows),
        "ts": pa.array(start + seconds, type=pa.timestamp("us", "UTC")),
    }
    source.update({f"f{i}": rng.normal(size=rows) for i in range(FEATURES)})
    ws.lake.ingest(pa.table(source), table="activity")
    ws.lake.ingest(spine(rows, 8), table="requests")
    ws.features.apply(
        [
            FeatureView(
                "activity",
                source="activity",
                entities=[Entity("user")],
                timestamp="ts",
                ttl="30d",
                features=[f"f{i}" for i in range(FEATURES)],
            ),
            FeatureService("bench", features=["activity"]),
        ]
    )
    training = ws.features.historical(spine(TRAIN_ROWS, 9), "bench")
    frame = training.to_pandas()
    for column in ("carrier", "origin"):
        frame[column] = frame[column].astype("category")
    label = (frame["activity__f0"].fillna(0) + frame["distance"] / 1000 > 1).astype(int)
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 1}
    inputs = ["hour", "distance", "carrier", "origin", *training.features]
    for name, columns in (("bench", inputs), ("plain", inputs[:4])):
        booster = lgb.train(params, lgb.Dataset(frame[columns], label), num_boost_round=100)
        ws.models.register(
            booster,
            name,
            training_set=training,
            features="bench" if name == "bench" else None,
            example=frame[columns].head(100),
        )
    ws.close()


def child(home: str, model: str, chunk_rows: int) -> None:
    """Score the spine once in this fresh process and print JSON."""
    import plinth
    from plinth.serving.batch import predict_table

    ws = plinth.Workspace(home)
    ws.lake.tables()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    started = time.perf_counter()
    result = predict_table(ws, model, "requests", output=f"scored_{model}", chunk_rows=chunk_rows)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    figures = {"rows": result.rows, "chunks": result.chunks, "seconds": seconds}
    print(json.dumps({**figures, "rss_gb": peak, "baseline_gb": baseline}))


def main() -> None:
    """Build the workspace once, then measure each model in a fresh process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    from rich.console import Console

    console = Console(highlight=False)
    notes: list[str] = []
    env = {**os.environ, "PLINTH_PROFILE_ON_INGEST": "false"}
    with tempfile.TemporaryDirectory() as home:
        with console.status("Building the workspace (source, spine, models)"):
            code = (
                f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"import batch_predict; batch_predict.build(__import__('pathlib').Path({home!r}),"
                f" {args.rows})"
            )
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
        for model, label in (("bench", "with features"), ("plain", "table only")):
            with console.status(f"Scoring {label}"), contention(f"scoring {label}", notes):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", home, model, str(args.chunk_rows)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            console.print(
                f"batch predict ({label}): {r['rows']:,} rows in {r['chunks']} chunks of "
                f"{args.chunk_rows:,} in {r['seconds']:.2f} s = {r['rows'] / r['seconds']:,.0f} "
                f"rows/s, peak RSS {r['rss_gb']:.2f} GB ({r['baseline_gb']:.2f} GB before the "
                "job) (no target yet)"
            )
    for note in notes:
        print(note, file=sys.stderr)


if __name__ == "__main__":
    main()
