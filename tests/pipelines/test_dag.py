"""Tracing pipelines into DAGs, parameters, and the lint that runs before anything else."""

from __future__ import annotations

import pytest

from plinth.errors import ConfigError, PipelineError
from plinth.pipelines import Dag, Ref, Resources, StepNode, Table, load_pipeline, pipeline, step
from plinth.pipelines.definition import parse_params
from plinth.pipelines.steps import parse_memory
from tests.pipelines import flows


def test_trace_builds_nodes_and_edges_from_the_data_flow():
    dag = flows.shapes.trace({"n": 3})
    assert list(dag.nodes) == ["numbers", "split", "total", "who"]
    assert dag.nodes["split"].upstream == ["numbers"]
    assert dag.nodes["total"].args == {"values": Ref("split", "rest")}
    assert dag.nodes["who"].args == {"extra": 3}  # 'ws' is provided by the engine
    assert dag.order() == ["numbers", "who", "split", "total"]
    assert dag.returns == {
        "head": Ref("split", "head"),
        "rest": Ref("total", "output"),
        "who": Ref("who", "output"),
    }
    assert dag.params == {"n": 3}


def test_the_same_step_twice_gets_distinct_names():
    dag = flows.parallel.trace()
    assert list(dag.nodes) == ["nap", "nap_2", "pair"]
    assert dag.nodes["pair"].upstream == ["nap", "nap_2"]
    failing = flows.failing.trace()
    assert {"passthrough", "sooner", "later"} <= set(failing.nodes)
    assert failing.downstream("explode") == {"passthrough", "sooner", "later"}


def test_tables_come_from_reads_and_table_arguments():
    dag = flows.tables.trace()
    assert dag.nodes["count_rows"].tables == ["events"]
    assert dag.nodes["newest"].tables == ["events"]
    assert dag.nodes["count_rows"].args == {"events": Table("events")}


def test_dag_json_lists_steps_in_order_with_their_options():
    shape = flows.retrying.trace({"marker": "m", "fail_times": 2}).to_json()
    names = [s["name"] for s in shape["steps"]]
    assert names == ["flaky", "numbers", "total"]
    flaky = shape["steps"][0]
    assert flaky["retries"] == 2 and flaky["params"] == {"marker": "m", "fail_times": 2}
    assert shape["steps"][1]["inputs"] == {"n": "flaky.output"}
    assert shape["params"] == {"marker": "m", "fail_times": 2}


def test_parameters_use_defaults_and_convert_strings():
    @pipeline
    def flow(lr: float = 0.1, epochs: int = 2, fast: bool = False, tags: list | None = None):
        pass

    assert flow.bind() == {"lr": 0.1, "epochs": 2, "fast": False, "tags": None}
    bound = flow.bind(parse_params(["lr=0.5", "epochs=7", "fast=yes", 'tags=["a"]']))
    assert bound == {"lr": 0.5, "epochs": 7, "fast": True, "tags": ["a"]}
    with pytest.raises(PipelineError, match="expects int, got 'many'"):
        flow.bind({"epochs": "many"})


def test_unknown_and_missing_parameters_are_rejected():
    with pytest.raises(PipelineError, match="has no parameter 'nope'") as info:
        flows.simple.trace({"nope": 1})
    assert "Its parameters are: n" in str(info.value)

    @pipeline
    def needs(size: int):
        pass

    with pytest.raises(PipelineError, match="needs parameter 'size'"):
        needs.trace()
    with pytest.raises(PipelineError, match="not a parameter"):
        parse_params(["novalue"])


def test_missing_inputs_are_named_before_anything_runs():
    @step
    def two(a: int, b: int) -> int:
        return a + b

    @pipeline
    def flow():
        two(1)

    with pytest.raises(PipelineError, match="step 'two' is missing input 'b'"):
        flow.trace()

    @pipeline
    def extra():
        two(1, 2, c=3)

    with pytest.raises(PipelineError, match="cannot take these arguments"):
        extra.trace()


def test_a_cycle_is_named():
    noop = step(name="noop")(lambda x=None: x)
    dag = Dag(
        "loop",
        {
            "a": StepNode("a", noop, {"x": Ref("c", "output")}),
            "b": StepNode("b", noop, {"x": Ref("a", "output")}),
            "c": StepNode("c", noop, {"x": Ref("b", "output")}),
        },
    )
    with pytest.raises(PipelineError, match=r"has a cycle: a -> b -> c -> a"):
        dag.lint()


def test_references_to_missing_steps_or_outputs_are_rejected():
    noop = step(name="noop")(lambda x=None: x)
    dag = Dag("broken", {"a": StepNode("a", noop, {"x": Ref("ghost", "output")})})
    with pytest.raises(PipelineError, match="no step 'ghost'"):
        dag.lint()

    @pipeline
    def flow():
        head, _rest = flows.split(flows.numbers(3))
        return flows.total(head)

    dag = flow.trace()
    dag.nodes["total"].args["values"] = Ref("split", "middle")
    with pytest.raises(PipelineError, match=r"has outputs \['head', 'rest'\]"):
        dag.lint()


def test_unstorable_outputs_and_unhashable_parameters_fail_lint():
    @step
    def rows():
        yield 1

    @pipeline
    def gen():
        rows()

    with pytest.raises(PipelineError, match="step 'rows' is a generator"):
        gen.trace().lint()

    @step
    def take(value) -> int:
        return 1

    @pipeline
    def unhashable():
        take(object())

    with pytest.raises(PipelineError, match="parameter 'value' of step 'take' cannot be part"):
        unhashable.trace().lint()

    @pipeline
    def nan():
        take(float("nan"))

    with pytest.raises(PipelineError, match="cache key"):
        nan.trace().lint()
    uncached = step(cache=False)(take.fn)

    @pipeline
    def fine():
        uncached(object())

    assert fine.trace().lint() == ["take"]


def test_handles_cannot_be_used_as_values_while_tracing():
    @pipeline
    def flow():
        if flows.numbers(3):
            pass

    with pytest.raises(PipelineError, match="cannot be tested for truth"):
        flow.trace()

    @pipeline
    def unpack():
        _a, _b = flows.numbers(3)

    with pytest.raises(PipelineError, match="unpacked or iterated"):
        unpack.trace()

    @pipeline
    def computes():
        return flows.numbers(3) + 1

    with pytest.raises(PipelineError, match="Tracing pipeline 'computes' raised TypeError"):
        computes.trace()


def test_handles_from_another_trace_are_missing_inputs():
    kept = []

    @pipeline
    def first():
        kept.append(flows.numbers(2))

    first.trace()

    @pipeline
    def second():
        flows.total(kept[0])

    with pytest.raises(PipelineError, match="a handle from another pipeline trace"):
        second.trace()


def test_names_and_options_are_validated():
    with pytest.raises(PipelineError, match="two steps are named 'x'"):

        @pipeline
        def twice():
            flows.numbers.named("x")(1)
            flows.numbers.named("x")(2)

        twice.trace()

    def one() -> int:
        return 1

    with pytest.raises(ConfigError, match="retries"):
        step(retries=-1)(one)
    with pytest.raises(ConfigError, match="not a valid table name"):
        step(reads=["no such"])(one)
    with pytest.raises(ConfigError, match="distinct"):
        step(outputs=["a", "a"])(one)
    with pytest.raises(PipelineError, match="'<lambda>' is not a valid step name"):
        step(lambda: 1)
    with pytest.raises(ConfigError, match="not a size"):
        Resources(memory="lots")
    assert parse_memory("2GB") == 2_000_000_000 and parse_memory("512MiB") == 512 * 2**20
    with pytest.raises(PipelineError, match="called inside another pipeline"):

        @pipeline
        def outer():
            flows.simple.trace()

        outer.trace()


def test_steps_outside_a_pipeline_are_plain_functions():
    assert flows.total([1, 2, 3]) == 6
    assert flows.split([1, 2]) == ([1], [2])
    with pytest.raises(PipelineError, match="only be called inside a @pipeline"):
        flows.numbers.named("x")(3)


def test_pipelines_load_by_reference(tmp_path):
    assert load_pipeline("tests.pipelines.flows:simple") is flows.simple
    script = tmp_path / "myflow.py"
    script.write_text("from tests.pipelines.flows import simple as flow\n")
    assert load_pipeline(f"{script}:flow") is flows.simple
    with pytest.raises(PipelineError, match="not a pipeline reference"):
        load_pipeline("no_colon")
    with pytest.raises(PipelineError, match="Cannot import module 'no_such_module_x'"):
        load_pipeline("no_such_module_x:flow")
    with pytest.raises(PipelineError, match="has no pipeline 'ghost'"):
        load_pipeline("tests.pipelines.flows:ghost")
    with pytest.raises(PipelineError, match="is a step, not a pipeline"):
        load_pipeline("tests.pipelines.flows:total")
