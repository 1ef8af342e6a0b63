"""Control-plane API speed: the runs page over 100k runs, and metric charts over long series.

Targets (issue): with 100,000 runs, ``GET /api/v1/runs?limit=50`` answers with p95 < 200 ms
(first page, and a filtered, sorted page); with 10 runs of 10,000 steps each,
``GET /api/v1/runs/{id}/metrics/{key}?max_points=500`` answers in < 100 ms with a downsampled
series. The runs are written straight into the catalog with SQLAlchemy Core (bulk inserts);
the series go through the same metric writer runs use. Requests run in process over httpx's
ASGI transport, so the figures include routing, auth and JSON but no socket.

Run: ``python benchmarks/server.py [--runs 100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plinth
from plinth.catalog.models import Run, RunMetric, RunParam

TARGET_RUNS_P95_MS = 200.0
TARGET_CHART_MS = 100.0
CALLS = 50
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def bulk_runs(ws: plinth.Workspace, count: int, chunk: int = 10_000) -> float:
    """Insert ``count`` finished runs with two parameters and two metrics each; seconds."""
    from sqlalchemy import insert

    rng = random.Random(0)
    begin = time.perf_counter()
    engine = ws.catalog.engine
    for start in range(0, count, chunk):
        runs, params, metrics = [], [], []
        for i in range(start, min(start + chunk, count)):
            run_id = f"run_bench{i:08d}"
            at = T0 + timedelta(seconds=i)
            runs.append(dict(id=run_id, experiment=f"exp-{i % 20}", status="finished",
                             launcher="local", started_at=at, ended_at=at + timedelta(seconds=60),
                             created_by="bench"))  # fmt: skip
            lr = rng.choice([0.001, 0.01, 0.1])
            params.append(dict(run_id=run_id, key="lr", value=str(lr), number=lr))
            params.append(dict(run_id=run_id, key="depth", value=str(i % 10), number=i % 10))
            for key, value in (("auc", rng.random()), ("loss", rng.random())):
                metrics.append(dict(run_id=run_id, key=key, last=value, last_step=99, min=value,
                                    max=value, count=100, updated_at=at))  # fmt: skip
        with engine.begin() as connection:
            connection.execute(insert(Run), runs)
            connection.execute(insert(RunParam), params)
            connection.execute(insert(RunMetric), metrics)
    return time.perf_counter() - begin


def long_series(ws: plinth.Workspace, runs: int = 10, steps: int = 10_000) -> list[str]:
    """Runs with ``steps`` points of 'loss' each, logged through the metric writer."""
    ids = []
    for r in range(runs):
        with ws.run("charts", capture=False) as run:
            for step in range(steps):
                run.log_metric("loss", 1.0 / (step + 1) + r * 0.01, step=step)
        ids.append(run.id)
    return ids


async def timings(app: object, path: str, params: dict[str, object], calls: int) -> list[float]:
    """Milliseconds of ``calls`` GETs of ``path`` (after two warm-up calls)."""
    import httpx

    out = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
        for i in range(calls + 2):
            begin = time.perf_counter()
            answer = await client.get(path, params=params)
            elapsed = (time.perf_counter() - begin) * 1000
            assert answer.status_code == 200, answer.text
            if i >= 2:
                out.append(elapsed)
    return out


def p95(values: list[float]) -> float:
    """The 95th percentile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    """Build the workspace, time the two routes and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    from plinth.server.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        ws = plinth.Workspace(settings=plinth.Settings(home=Path(folder) / "ws", user="bench"))
        seconds = bulk_runs(ws, args.runs)
        print(f"setup: {args.runs:,} runs inserted in {seconds:.1f} s")
        ids = long_series(ws)
        app = create_app(ws)
        pages = {
            "first page": {"limit": 50},
            "filtered, sorted page": {
                "limit": 50,
                "filter": "metrics.auc > 0.5 and params.lr = 0.01",
                "sort": "metrics.auc desc",
            },
        }
        for name, params in pages.items():
            ms = asyncio.run(timings(app, "/api/v1/runs", params, CALLS))
            worst = p95(ms)
            print(
                f"runs API, {name} of {args.runs:,} runs: p95 {worst:.1f} ms "
                f"(target < {TARGET_RUNS_P95_MS:.0f} ms) {verdict(worst < TARGET_RUNS_P95_MS)}"
            )
        chart = []
        for run_id in ids:
            path = f"/api/v1/runs/{run_id}/metrics/loss"
            chart.extend(asyncio.run(timings(app, path, {"max_points": 500}, 5)))
        worst = max(chart)
        print(
            f"metric chart API, 10 runs x 10,000 steps at max_points=500: slowest {worst:.1f} ms, "
            f"p95 {p95(chart):.1f} ms (target < {TARGET_CHART_MS:.0f} ms) "
            f"{verdict(worst < TARGET_CHART_MS)}"
        )
        ws.close()


if __name__ == "__main__":
    main()
