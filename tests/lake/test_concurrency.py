"""Concurrent writers and crashes: no row is lost, and catalog and Delta log always agree."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from plinth.workspace import Workspace
from tests.conftest import settings_env

APPENDER = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    import plinth

    worker = int(sys.argv[1])
    ws = plinth.Workspace()
    rows = pa.table({"worker": [worker] * 1000, "n": list(range(1000))})
    info = ws.lake.ingest(rows, table="events")
    print(info.version)
    """
)


def _run_all(scripts: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in scripts
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


@pytest.mark.slow
def test_eight_concurrent_appenders_lose_no_row(ws_settings):
    env = settings_env(ws_settings)
    results = _run_all([[APPENDER, str(i)] for i in range(8)], env)
    for result in results:
        assert result.returncode == 0, result.stderr
    versions = sorted(int(r.stdout.strip()) for r in results)
    assert versions == list(range(8))
    with Workspace(settings=ws_settings) as ws:
        table = ws.lake.read("events")
        assert table.num_rows == 8000
        assert sorted(set(table.column("worker").to_pylist())) == list(range(8))
        history = ws.lake.history("events")
        assert [v.version for v in history] == list(range(8))
        assert history[-1].row_count == 8000


CRASH_AFTER_COMMIT = textwrap.dedent(
    """
    import os, signal
    import pyarrow as pa
    import plinth
    from plinth.lake.lake import Lake

    ws = plinth.Workspace()
    ws.lake.ingest(pa.table({"a": [1, 2]}), table="t")

    def die(self, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    Lake.record_version = die
    ws.lake.ingest(pa.table({"a": [3]}), table="t")
    """
)

CRASH_BEFORE_COMMIT = textwrap.dedent(
    """
    import os, signal
    import pyarrow as pa
    import plinth
    from plinth.lake import schema

    ws = plinth.Workspace()
    ws.lake.ingest(pa.table({"a": [1, 2]}), table="t")
    original = schema.conform_batch
    seen = []

    def conform_then_die(batch, target):
        seen.append(batch)
        if len(seen) > 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(batch, target)

    schema.conform_batch = conform_then_die
    ws.lake.ingest(pa.table({"a": list(range(300_000))}), table="t")
    """
)


def _pending(ws: Workspace) -> list[str]:
    from sqlalchemy import select

    from plinth.catalog.models import Ingest

    with ws.catalog.session() as session:
        return list(session.scalars(select(Ingest.status).order_by(Ingest.started_at)))


def test_crash_after_delta_commit_is_recorded_on_next_open(ws_settings):
    result = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_COMMIT],
        env=settings_env(ws_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -9, result.stderr
    ws = Workspace(settings=ws_settings)
    try:
        assert _pending(ws) == ["committed", "pending"]
        # Opening the lake reconciles: the commit landed, so the catalog records version 1.
        history = ws.lake.history("t")
        assert [(v.version, v.row_count) for v in history] == [(0, 2), (1, 3)]
        assert _pending(ws) == ["committed", "committed"]
        assert ws.lake.read("t").num_rows == 3
    finally:
        ws.close()


def test_crash_before_delta_commit_is_marked_failed(ws_settings):
    result = subprocess.run(
        [sys.executable, "-c", CRASH_BEFORE_COMMIT],
        env=settings_env(ws_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -9, result.stderr
    ws = Workspace(settings=ws_settings)
    try:
        assert [v.version for v in ws.lake.history("t")] == [0]
        assert _pending(ws) == ["committed", "failed"]
        assert ws.lake.read("t").num_rows == 2
        # The table still takes new data after the failed ingest.
        import pyarrow as pa

        assert ws.lake.ingest(pa.table({"a": [5]}), table="t").version == 1
    finally:
        ws.close()


def test_pending_ingest_of_a_live_process_is_left_alone(ws_settings):
    import os

    from plinth._core.clock import utcnow
    from plinth.catalog.models import Ingest
    from plinth.lake.reconcile import process_host

    ws = Workspace(settings=ws_settings)
    try:
        with ws.catalog.session() as session:
            session.add(
                Ingest(
                    id="ing_live",
                    table_name="t",
                    mode="append",
                    status="pending",
                    source={},
                    host=process_host(),
                    pid=os.getppid(),
                    started_at=utcnow(),
                    created_by="x",
                )
            )
        result = ws.lake.reconcile()
        assert result.failed == [] and result.recovered == []
        assert _pending(ws) == ["pending"]
    finally:
        ws.close()
