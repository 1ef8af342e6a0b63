"""Benchmarks of querying tracked runs: a filtered page of runs, and a downsampled metric series.

Run ``python benchmarks/tracking_query.py [--runs N] [--calls N] [--postgres URL] [--only NAME]``:

* ``sqlite``: a fresh workspace with a SQLite catalog gets RUNS runs (5 parameters, 5 metric
  summaries and 3 tags each) and one run with a 10,000-step ``loss`` series stored as the
  writer stores it (packed chunks of 1,000 points). Timed: ``Runs.list(filter="metrics.auc >
  0.7 and params.lr = 0.1", limit=100)``, CALLS calls after a warm-up, and
  ``Runs.history(run, "loss", max_points=1000)``, which downsamples the series.
* ``postgres``: the same in a new database on the server at ``--postgres URL`` (created and
  dropped by the benchmark), or else on a throwaway PostgreSQL server started on loopback the
  way the test suite starts one; skipped when neither is possible. The tables are analyzed
  after loading, as autovacuum would do on a live server.

Each figure prints one line with its target and PASS or MISS. The exit code is 0 whenever
the benchmarks ran. When other processes used more than a tenth of the CPUs meanwhile, a note
on stderr says the timings may be inflated (a local PostgreSQL server's own work counts as
another process, so its figures usually carry the note).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import contention, latencies, verdict
from sqlalchemy import insert, text

from plinth._core.settings import Settings
from plinth.catalog.models import MetricChunk, Run, RunMetric, RunParam, RunTag
from plinth.tracking.points import pack
from plinth.tracking.service import Runs
from plinth.workspace import Workspace

DEFAULT_RUNS = 10_000
DEFAULT_CALLS = 200
HISTORY_CALLS = 50
WARMUP_CALLS = 10
SERIES_STEPS = 10_000
CHUNK_POINTS = 1_000
LIST_P95_MS = 200.0
HISTORY_P95_MS = 100.0
FILTER = "metrics.auc > 0.7 and params.lr = 0.1"
BENCHMARKS = ("sqlite", "postgres")
ROOT = Path(__file__).resolve().parents[1]


# -- data --------------------------------------------------------------------------------------


def load(ws: Workspace, runs: int, seed: int = 0) -> str:
    """Write ``runs`` runs with params, metric summaries and tags, plus one long series.

    Returns the id of the run holding the ``loss`` series.
    """
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch = 2_000
    for first in range(0, runs, batch):
        rows: dict[str, list[dict[str, Any]]] = {
            "runs": [],
            "params": [],
            "metrics": [],
            "tags": [],
        }
        for i in range(first, min(first + batch, runs)):
            run_id = f"run_{i:08d}"
            started = start + timedelta(minutes=i)
            rows["runs"].append(
                {
                    "id": run_id,
                    "experiment": f"exp{i % 20}",
                    "status": rng.choice(("finished", "finished", "finished", "failed")),
                    "parent_id": None,
                    "launcher": "local",
                    "started_at": started,
                    "ended_at": started + timedelta(seconds=rng.randint(10, 3600)),
                    "created_by": "bench",
                }
            )
            params = {
                "lr": rng.choice((0.1, 0.03, 0.01, 0.003, 0.001)),
                "depth": rng.randint(2, 12),
                "batch": rng.choice((32, 64, 128, 256)),
                "seed": rng.randint(0, 10_000),
                "optimizer": rng.choice(("adam", "sgd", "adamw")),
            }
            for key, value in params.items():
                number = float(value) if isinstance(value, int | float) else None
                rows["params"].append(
                    {"run_id": run_id, "key": key, "value": str(value), "number": number}
                )
            for key in ("auc", "loss", "accuracy", "f1", "precision"):
                value = rng.uniform(0.5, 1.0) if key != "loss" else rng.uniform(0.05, 2.0)
                rows["metrics"].append(
                    {
                        "run_id": run_id,
                        "key": key,
                        "last": value,
                        "last_step": 100,
                        "min": value,
                        "max": value,
                        "count": 101,
                        "updated_at": started,
                    }
                )
            for key, value in (
                ("team", rng.choice(("vision", "nlp", "ranking"))),
                ("stage", rng.choice(("dev", "prod"))),
                ("git_branch", f"feature-{rng.randint(0, 50)}"),
            ):
                rows["tags"].append({"run_id": run_id, "key": key, "value": value})
        with ws.catalog.session() as session:
            session.execute(insert(Run.__table__), rows["runs"])
            session.execute(insert(RunParam.__table__), rows["params"])
            session.execute(insert(RunMetric.__table__), rows["metrics"])
            session.execute(insert(RunTag.__table__), rows["tags"])
    return add_long_series(ws, start)


def add_long_series(ws: Workspace, start: datetime) -> str:
    """One run with a ``loss`` series of SERIES_STEPS steps, in chunks as the writer packs them."""
    run_id = "run_series"
    base_us = int(start.timestamp() * 1_000_000)
    values = [1 / (1 + i / 500) + 0.02 * math.sin(i / 40) for i in range(SERIES_STEPS)]
    with ws.catalog.session() as session:
        session.execute(
            insert(Run.__table__),
            [
                {
                    "id": run_id,
                    "experiment": "series",
                    "status": "finished",
                    "parent_id": None,
                    "launcher": "local",
                    "started_at": start,
                    "ended_at": start + timedelta(hours=1),
                    "created_by": "bench",
                }
            ],
        )
        metric = RunMetric(
            run_id=run_id,
            key="loss",
            last=values[-1],
            last_step=SERIES_STEPS - 1,
            min=min(values),
            max=max(values),
            count=SERIES_STEPS,
            updated_at=start,
        )
        session.add(metric)
        session.flush()
        chunks = []
        for first in range(0, SERIES_STEPS, CHUNK_POINTS):
            steps = list(range(first, min(first + CHUNK_POINTS, SERIES_STEPS)))
            packed = pack(steps, values[first : first + len(steps)], [base_us + s for s in steps])
            chunks.append({"metric_id": metric.id, **packed})
        session.execute(insert(MetricChunk.__table__), chunks)
    return run_id


# -- measurements ------------------------------------------------------------------------------


def percentiles(values: list[float]) -> tuple[float, float]:
    """Return the p50 and p95 of ``values``."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), cuts[94]


def bench(label: str, settings: Settings, runs: int, calls: int, notes: list[str]) -> list[str]:
    """Load a workspace on ``settings``, then time the filtered list and the history read."""
    lines = []
    with Workspace(settings=settings) as ws:
        begin = time.perf_counter()
        series_run = load(ws, runs)
        if ws.catalog.dialect == "postgresql":
            with ws.catalog.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        lines.append(f"{label} load: {runs:,} runs in {time.perf_counter() - begin:.1f} s")
        service = Runs(ws)
        found = service.list(filter=FILTER, limit=100)
        if len(found) != 100 or any(r.params["lr"] != "0.1" for r in found):
            raise RuntimeError(f"the filter returned {len(found)} runs, or wrong ones")
        with contention(f"the {label} list calls", notes):
            values = latencies(lambda: service.list(filter=FILTER, limit=100), calls, WARMUP_CALLS)
        p50, p95 = percentiles(values)
        lines.append(
            f'{label} Runs.list(filter="{FILTER}", limit=100) over {runs:,} runs: p50 {p50:.1f} ms,'
            f" p95 {p95:.1f} ms over {calls} calls (target p95 < {LIST_P95_MS:g} ms)"
            f" {verdict(p95 < LIST_P95_MS)}"
        )
        history = service.history(series_run, "loss", max_points=1000)
        if not history.downsampled or history.steps[-1] != SERIES_STEPS - 1:
            raise RuntimeError("the series was not downsampled as expected")
        with contention(f"the {label} history calls", notes):
            values = latencies(
                lambda: service.history(series_run, "loss", max_points=1000),
                HISTORY_CALLS,
                WARMUP_CALLS,
            )
        p50, p95 = percentiles(values)
        lines.append(
            f"{label} Runs.history({SERIES_STEPS:,}-step series, max_points=1000) ->"
            f" {len(history.steps)} points: p50 {p50:.1f} ms, p95 {p95:.1f} ms over"
            f" {HISTORY_CALLS} calls (target p95 < {HISTORY_P95_MS:g} ms)"
            f" {verdict(p95 < HISTORY_P95_MS)}"
        )
    return lines


class Unavailable(Exception):
    """No PostgreSQL server can be used for the benchmark."""


@contextlib.contextmanager
def postgres_database(url: str | None) -> Iterator[str]:
    """Yield the URL of a new, empty database (dropped afterwards) on a PostgreSQL server.

    With ``url`` None, a throwaway server is started on loopback as the test suite does.
    """
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:
        raise Unavailable("psycopg is not installed") from exc
    service = None
    if url is None:
        sys.path.insert(0, str(ROOT))
        from tests.services import ServiceError, _start_postgres

        try:
            service, url = _start_postgres()
        except ServiceError as exc:
            raise Unavailable(str(exc).splitlines()[0]) from exc
    try:
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
        name = f"plinth_bench_{uuid.uuid4().hex[:10]}"
        try:
            with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise Unavailable(f"cannot create a database there: {exc}") from exc
        head, _, _ = url.rpartition("/")
        try:
            yield f"{head}/{name}"
        finally:
            with psycopg.connect(libpq, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    finally:
        if service is not None:
            service.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs to create")
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help="timed list calls")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server to use")
    parser.add_argument("--only", choices=BENCHMARKS, help="run one benchmark")
    args = parser.parse_args(argv)
    chosen = [args.only] if args.only else list(BENCHMARKS)
    notes: list[str] = []
    print(
        f"run query benchmarks on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="plinth-bench-tracking-") as tmp:
        if "sqlite" in chosen:
            settings = Settings(home=Path(tmp) / "sqlite", user="bench")
            for line in bench("sqlite", settings, args.runs, args.calls, notes):
                print(line, flush=True)
        if "postgres" in chosen:
            try:
                with postgres_database(args.postgres) as url:
                    settings = Settings(home=Path(tmp) / "pg", user="bench", database_url=url)
                    for line in bench("postgres", settings, args.runs, args.calls, notes):
                        print(line, flush=True)
            except Unavailable as exc:
                print(f"postgres: skipped ({exc})", flush=True)
    for note in notes:
        print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
