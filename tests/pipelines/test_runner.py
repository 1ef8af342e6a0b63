"""Running pipelines locally: results, retries, failures, parallelism, logs and records."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest
from sqlalchemy import select

from plinth.catalog.lineage import Node, walk
from plinth.catalog.models import PipelineRun, StepCacheEntry, StepRun
from plinth.errors import NotFoundError, PipelineError, StepFailedError
from plinth.pipelines import Event, pipeline, run, step
from plinth.pipelines.executors.local import LocalExecutor
from tests.pipelines import flows


def test_a_run_returns_values_and_records_every_step(ws):
    result = run(flows.simple, {"n": 5}, ws=ws)
    assert result.succeeded and result.value == 10
    assert result.outputs["numbers"] == [0, 1, 2, 3, 4]
    assert [s.status for s in result.steps.values()] == ["succeeded", "succeeded"]
    with ws.catalog.session() as session:
        record = session.get(PipelineRun, result.run_id)
        assert (record.status, record.pipeline, record.executor) == ("succeeded", "simple", "local")
        assert record.reference == "tests.pipelines.flows:simple"
        assert record.params == {"n": 5}
        assert [s["name"] for s in record.dag["steps"]] == ["numbers", "total"]
        rows = {r.step: r for r in session.scalars(select(StepRun))}
        assert rows["total"].inputs["artifacts"] == {
            "numbers.output": rows["numbers"].outputs["output"]
        }
        assert rows["numbers"].inputs["params"] == {"n": 5}
        assert rows["total"].attempts == 1 and rows["total"].ended_at >= rows["total"].started_at
        assert session.scalar(
            select(StepCacheEntry).where(StepCacheEntry.cache_key == rows["total"].cache_key)
        )
        edges = walk(session, Node("step_run", f"{result.run_id}/total"), "up")
    relations = {(e.source.kind, e.relation, e.target.kind) for e in edges}
    assert ("artifact", "input_of", "step_run") in relations
    assert ("step_run", "produced", "artifact") in relations
    assert ("pipeline_run", "has_step", "step_run") in relations


def test_multiple_outputs_workspace_and_context(ws):
    result = run(flows.shapes, {"n": 4}, ws=ws)
    assert result.outputs["split.head"] == [0]
    assert result.output("split", "rest") == [1, 2, 3]
    who = result.value["who"]
    assert who == {
        "step": "who",
        "attempt": 1,
        "run": result.run_id,
        "home": str(ws.home),
        "extra": 4,
    }
    assert result.value["rest"] == 6
    with pytest.raises(PipelineError, match="name one"):
        result.output("split")
    with pytest.raises(NotFoundError, match="no step 'ghost'"):
        result.output("ghost")


def test_tables_are_read_at_a_pinned_version_and_linked(ws):
    ws.lake.ingest(pa.table({"id": [1, 2]}), table="events")
    ws.lake.ingest(pa.table({"id": [3]}), table="events")
    result = run(flows.tables, ws=ws)
    assert result.value == {"rows": 3, "version": 1}
    with ws.catalog.session() as session:
        edges = walk(session, Node("step_run", f"{result.run_id}/count_rows"), "up", depth=1)
    assert Node("table_version", "events@1") in {e.source for e in edges}


def test_a_missing_table_fails_its_step_before_it_starts(ws):
    with pytest.raises(StepFailedError, match="Table 'events' does not exist") as info:
        run(flows.tables, ws=ws)
    steps = info.value.result.steps
    assert steps["count_rows"].status == "failed" and steps["count_rows"].attempts == 0


def test_retries_until_a_step_succeeds(ws, tmp_path):
    marker = tmp_path / "attempts"
    events: list[Event] = []
    result = run(
        flows.retrying, {"marker": str(marker), "fail_times": 2}, ws=ws, on_event=events.append
    )
    assert result.value == sum(range(3))
    flaky = result.steps["flaky"]
    assert (flaky.status, flaky.attempts) == ("succeeded", 3)
    assert [e.kind for e in events if e.step == "flaky"] == [
        "started", "retrying", "started", "retrying", "started", "succeeded",
    ]  # fmt: skip
    log = result.log("flaky")
    assert "--- attempt 1 ---" in log and "RuntimeError: flaky failure 1" in log
    assert "attempt 3" in log


def test_a_failing_step_skips_its_downstream_and_independent_branches_finish(ws):
    with pytest.raises(StepFailedError) as info:
        run(flows.failing, ws=ws)
    error = info.value
    assert "step 'explode' failed after 2 attempts: ValueError: exploded on purpose" in str(error)
    assert "3 downstream step(s) skipped" in error.message
    assert f"plinth pipeline logs {error.result.run_id} explode" in error.hint
    statuses = {name: s.status for name, s in error.result.steps.items()}
    assert statuses == {
        "numbers": "succeeded",
        "explode": "failed",
        "passthrough": "skipped",
        "sooner": "skipped",
        "later": "skipped",
        "total": "succeeded",
    }
    detail = ws.pipelines.get(error.result.run_id)
    assert detail.status == "failed" and "explode" in detail.error
    explode = detail.step("explode")
    assert explode.attempts == 2 and "Traceback" in explode.error
    assert "ValueError: exploded on purpose" in ws.pipelines.log(detail.id, "explode")
    assert detail.step("later").error == "Upstream step 'explode' failed."
    with ws.catalog.session() as session:
        keys = session.scalars(select(StepCacheEntry.step)).all()
    assert not any(k.endswith(":explode") for k in keys)


def test_a_crashed_process_is_a_failed_attempt(ws):
    with pytest.raises(StepFailedError, match="exited with code 3 before it finished"):
        run(flows.crashing, ws=ws)


def test_an_unstorable_output_fails_at_once_naming_the_step(ws):
    with pytest.raises(StepFailedError) as info:
        run(flows.unstorable_flow, ws=ws)
    step_result = info.value.result.steps["unstorable"]
    assert step_result.attempts == 1  # not retried: it would fail the same way
    assert "Step 'unstorable' returned a _thread.lock as 'output'" in step_result.error


def test_output_is_captured_into_the_step_log(ws):
    result = run(flows.logging_flow, ws=ws)
    log = result.log("chatty")
    for line in ("to stdout", "to stderr", "from a subprocess", "straight to fd 1"):
        assert line in log
    assert ws.pipelines.log(result.run_id, "chatty") == log


def test_independent_steps_run_in_parallel(ws):
    start = time.perf_counter()
    result = run(flows.parallel, {"seconds": 1.0}, ws=ws, executor=LocalExecutor(cpus=2))
    elapsed = time.perf_counter() - start
    assert result.value == ["a", "b"]
    assert elapsed < 1.8, f"two 1 s steps took {elapsed:.2f} s"
    a, b = result.steps["nap"], result.steps["nap_2"]
    assert a.started_at < b.ended_at and b.started_at < a.ended_at


def test_steps_wait_for_free_cpus(ws):
    start = time.perf_counter()
    run(flows.parallel, {"seconds": 0.5}, ws=ws, executor=LocalExecutor(cpus=1))
    assert time.perf_counter() - start >= 1.0


def test_a_cached_step_starts_no_process(ws, monkeypatch):
    run(flows.simple, ws=ws)
    started = []
    monkeypatch.setattr(LocalExecutor, "_start", lambda *a: started.append(a))
    result = run(flows.simple, ws=ws)
    assert started == []
    assert {s.status for s in result.steps.values()} == {"cached"}
    assert result.steps["total"].cached_from is not None


def test_steps_defined_in_a_function_run_in_direct_forks(ws):
    @step
    def local_numbers(n: int) -> list[int]:
        return list(range(n))

    @pipeline
    def local_flow(n: int = 3):
        return flows.total(local_numbers(n))

    executor = LocalExecutor()
    assert run(local_flow, ws=ws, executor=executor).value == 3
    assert executor.start_method == "fork"
    with pytest.raises(PipelineError, match="cannot be imported by a step process"):
        run(local_flow, {"n": 4}, ws=ws, executor=LocalExecutor(start_method="forkserver"))


def test_fork_start_method_runs_importable_steps_too(ws):
    result = run(flows.shapes, ws=ws, executor=LocalExecutor(start_method="fork"))
    assert result.value["rest"] == 10


def test_a_malformed_pipeline_records_nothing(ws):
    with pytest.raises(PipelineError, match="has no parameter 'bogus'"):
        run(flows.simple, {"bogus": 1}, ws=ws)
    assert ws.pipelines.runs() == []


def test_runs_are_listed_and_found_by_id_prefix(ws):
    first = run(flows.simple, ws=ws)
    second = run(flows.simple, {"n": 6}, ws=ws)
    listed = ws.pipelines.runs()
    assert [r.id for r in listed] == [second.run_id, first.run_id]
    assert listed[0].steps == {"succeeded": 2}
    assert ws.pipelines.runs(pipeline="other") == []
    detail = ws.pipelines.get(second.run_id[:-3])
    assert detail.id == second.run_id and [s.name for s in detail.steps] == ["numbers", "total"]
    assert detail.steps[1].after == ["numbers"]
    assert ws.pipelines.output(second.run_id, "total") == 15
    with pytest.raises(NotFoundError, match="No pipeline run has the id 'pr_nope'"):
        ws.pipelines.get("pr_nope")


def test_handles_inside_lists_and_dicts_are_inputs(ws):
    dag = flows.fan_in.trace()
    assert dag.nodes["merge"].upstream == ["part_0", "part_1", "part_2"]
    result = run(flows.fan_in, ws=ws)
    assert result.value == [[[], [0], [0, 1]], {"first": []}]


def test_an_interrupt_stops_running_steps_and_records_why(ws):
    def interrupt(event: Event) -> None:
        if event.kind == "started" and event.step == "nap_2":
            raise KeyboardInterrupt

    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run(
            flows.parallel,
            {"seconds": 30},
            ws=ws,
            on_event=interrupt,
            executor=LocalExecutor(cpus=2),
        )
    assert time.perf_counter() - start < 15
    (summary,) = ws.pipelines.runs()
    detail = ws.pipelines.get(summary.id)
    assert (detail.status, detail.error) == ("failed", "Interrupted.")
    statuses = {s.name: s.status for s in detail.steps}
    assert statuses == {"nap": "failed", "nap_2": "failed", "pair": "skipped"}
