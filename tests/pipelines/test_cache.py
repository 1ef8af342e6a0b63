"""Cache correctness: each kind of change re-runs exactly the steps it affects.

The pipeline::

    source(n) ──> double(xs) ──> total(ys)
          └────> parity(xs) ──┐
    table_rows(Table events) ─┴─> report(p, rows)

Each test starts from a fully cached run, changes one thing, and checks which steps ran.
A step whose inputs kept their digests stays cached even when its upstream re-ran.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest

from plinth.pipelines import run

SOURCE = """
from plinth.pipelines import Table, pipeline, step

OFFSET = 1


def scale(x):
    return x * 10


@step
def source(n: int) -> list[int]:
    return list(range(n))


@step
def double(xs: list[int]) -> list[int]:
    return [scale(x) + OFFSET for x in xs]


@step
def total(ys: list[int]) -> int:
    return sum(ys)


@step
def parity(xs: list[int]) -> int:
    return len(xs) % 2


@step
def table_rows(events: Table = Table("events")) -> int:
    return events.read().num_rows


@step
def report(p: int, rows: int) -> str:
    return f"parity {p}, {rows} rows"


@pipeline
def flow(n: int = 4):
    xs = source(n)
    p = parity(xs)
    return {"total": total(double(xs)), "report": report(p, table_rows())}
"""
ALL = {"source", "double", "total", "parity", "table_rows", "report"}


def _runner(workspace, module_writer) -> Callable[..., tuple[set[str], dict[str, object]]]:
    """Run the (re)written pipeline; return the steps that ran (not cached) and its value."""
    workspace.lake.ingest(pa.table({"id": [1, 2, 3]}), table="events")

    def go(source: str = SOURCE, **params: object) -> tuple[set[str], dict[str, object]]:
        module = module_writer("cachedflow", source)
        result = run(module.flow, params, ws=workspace)
        ran = {name for name, s in result.steps.items() if s.status == "succeeded"}
        cached = {name for name, s in result.steps.items() if s.status == "cached"}
        assert ran | cached == ALL
        return ran, result.value

    first, value = go()
    assert first == ALL
    assert value == {"total": 64, "report": "parity 0, 3 rows"}
    return go


@pytest.fixture
def flow(ws, module_writer) -> Callable[..., tuple[set[str], dict[str, object]]]:
    """The pipeline on the embedded workspace, run once already."""
    return _runner(ws, module_writer)


@pytest.fixture
def flow_on_each_backend(
    workspace, module_writer
) -> Callable[..., tuple[set[str], dict[str, object]]]:
    """The pipeline on each catalog and storage backend, run once already."""
    return _runner(workspace, module_writer)


def test_an_unchanged_rerun_is_all_cache_hits(flow_on_each_backend):
    ran, value = flow_on_each_backend()
    assert ran == set()
    assert value == {"total": 64, "report": "parity 0, 3 rows"}


def test_changing_a_step_body_reruns_it_and_what_its_output_feeds(flow):
    ran, value = flow(SOURCE.replace("return sum(ys)", "return sum(ys) * 2"))
    assert ran == {"total"}
    assert value["total"] == 128
    ran, _ = flow(SOURCE.replace("scale(x) + OFFSET for", "scale(x) + OFFSET + 1 for"))
    assert ran == {"double", "total"}


def test_changing_a_helper_or_a_constant_it_reads_reruns_the_callers(flow):
    ran, value = flow(SOURCE.replace("return x * 10", "return x * 100"))
    assert ran == {"double", "total"}
    assert value["total"] == 604
    ran, _ = flow(
        SOURCE.replace("return x * 10", "return x * 100").replace("OFFSET = 1", "OFFSET = 2")
    )
    assert ran == {"double", "total"}


def test_a_body_change_with_the_same_output_leaves_downstream_cached(flow):
    ran, _ = flow(SOURCE.replace("return len(xs) % 2", "return (len(xs) + 2) % 2"))
    assert ran == {"parity"}  # same digest out, so 'report' is still a hit


def test_changing_a_parameter_reruns_the_steps_whose_inputs_changed(flow_on_each_backend):
    flow = flow_on_each_backend
    ran, value = flow(n=6)
    # parity re-runs on the new list but returns 0 again: report keeps its cache hit
    assert ran == {"source", "double", "total", "parity"}
    assert value == {"total": 156, "report": "parity 0, 3 rows"}
    ran, value = flow(n=5)
    assert ran == {"source", "double", "total", "parity", "report"}
    assert value["report"] == "parity 1, 3 rows"
    ran, _ = flow(n=6)
    assert ran == set()  # every earlier result is still in the cache


def test_a_new_table_version_reruns_its_readers(flow_on_each_backend, workspace):
    workspace.lake.ingest(pa.table({"id": [4]}), table="events")
    ran, value = flow_on_each_backend()
    assert ran == {"table_rows", "report"}
    assert value["report"] == "parity 0, 4 rows"


def test_no_cache_runs_everything_and_refreshes_entries(flow, ws):
    ran, _ = flow()
    assert ran == set()
    result = run("cachedflow:flow", ws=ws, cache=False)
    assert {s.status for s in result.steps.values()} == {"succeeded"}


def test_a_cache_entry_whose_artifact_is_gone_is_a_miss(flow, ws):
    from plinth.catalog.models import StepRun

    with ws.catalog.session() as session:
        row = session.query(StepRun).filter_by(step="total").first()
        digest = row.outputs["output"]
    ws.artifacts.storage.delete(ws.artifacts._key(digest))
    ran, value = flow()
    assert ran == {"total"}
    assert value["total"] == 64
