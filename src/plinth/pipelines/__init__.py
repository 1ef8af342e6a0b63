"""Pipelines: steps in Python, a DAG from their data flow, cached and retried, run locally
(a process per step) or on Ray, every run and step recorded in the catalog.

The names below load lazily, so a step process imports only what it uses.

Example:
    >>> from plinth.pipelines import pipeline, step
    >>> @step
    ... def numbers(n: int) -> list[int]:
    ...     return list(range(n))
    >>> @step(retries=2)
    ... def total(values: list[int]) -> int:
    ...     return sum(values)
    >>> @pipeline
    ... def flow(n: int = 4):
    ...     return total(numbers(n))
    >>> [node.upstream for node in flow.trace().nodes.values()]
    [[], ['numbers']]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Dag",
    "Event",
    "Executor",
    "Output",
    "Pipeline",
    "PipelineResult",
    "Ref",
    "Resources",
    "Runner",
    "Step",
    "StepContext",
    "StepNode",
    "StepResult",
    "Table",
    "TableInput",
    "context",
    "get_executor",
    "load_pipeline",
    "pipeline",
    "register_executor",
    "run",
    "step",
]

_EXPORTS = {
    "Dag": "plinth.pipelines.dag",
    "Event": "plinth.pipelines.runner",
    "Executor": "plinth.pipelines.executors",
    "Output": "plinth.pipelines.dag",
    "Pipeline": "plinth.pipelines.definition",
    "PipelineResult": "plinth.pipelines.results",
    "Ref": "plinth.pipelines.dag",
    "Resources": "plinth.pipelines.steps",
    "Runner": "plinth.pipelines.runner",
    "Step": "plinth.pipelines.steps",
    "StepContext": "plinth.pipelines.step_context",
    "StepNode": "plinth.pipelines.dag",
    "StepResult": "plinth.pipelines.results",
    "Table": "plinth.pipelines.steps",
    "TableInput": "plinth.pipelines.step_context",
    "context": "plinth.pipelines.step_context",
    "get_executor": "plinth.pipelines.executors",
    "load_pipeline": "plinth.pipelines.definition",
    "pipeline": "plinth.pipelines.definition",
    "register_executor": "plinth.pipelines.executors",
    "run": "plinth.pipelines.runner",
    "step": "plinth.pipelines.steps",
}

if TYPE_CHECKING:
    from plinth.pipelines.dag import Dag, Output, Ref, StepNode
    from plinth.pipelines.definition import Pipeline, load_pipeline, pipeline
    from plinth.pipelines.executors import Executor, get_executor, register_executor
    from plinth.pipelines.results import PipelineResult, StepResult
    from plinth.pipelines.runner import Event, Runner, run
    from plinth.pipelines.step_context import StepContext, TableInput, context
    from plinth.pipelines.steps import Resources, Step, Table, step


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plinth.pipelines' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
