"""The DAG of a pipeline: tracing step invocations into nodes, and linting the result.

Inside a ``@pipeline`` function each step call adds a :class:`StepNode` and returns
:class:`Output` handles; a handle passed to another step becomes an edge. Arguments keep their
structure (lists, tuples and dicts may hold handles and :class:`~plinth.pipelines.steps.Table`
references); in a node they hold :class:`Ref` placeholders that the executors replace by the
upstream values.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from plinth.errors import PipelineError
from plinth.pipelines.steps import INJECTED, Step, Table

__all__ = ["Dag", "Output", "Ref", "StepNode", "Tracer", "current_tracer"]

_TRACER: ContextVar[Tracer | None] = ContextVar("plinth_pipeline_tracer", default=None)
_TRACE_IDS = itertools.count(1)


@dataclass(frozen=True)
class Ref:
    """An edge's source inside a node's arguments: output ``output`` of node ``step``."""

    step: str
    output: str

    def __str__(self) -> str:
        return f"{self.step}.{self.output}"


@dataclass(frozen=True)
class Output:
    """The handle a step call returns while a pipeline is traced; pass it to other steps.

    Its value exists only when the pipeline runs, so it cannot be tested, iterated or
    computed with inside the pipeline function: do that in a step.
    """

    step: str
    name: str
    trace: int = field(default=0, repr=False, compare=False)

    def _refuse(self, what: str) -> PipelineError:
        return PipelineError(
            f"The output '{self.step}.{self.name}' is a handle while the pipeline is traced; "
            f"it cannot be {what}.",
            hint="Pass it to a step and do the work there.",
        )

    def __bool__(self) -> bool:
        raise self._refuse("tested for truth")

    def __iter__(self) -> Iterator[Any]:
        raise self._refuse("unpacked or iterated (declare @step(outputs=[...]) for several)")

    def __len__(self) -> int:
        raise self._refuse("measured")

    def __getitem__(self, key: Any) -> Any:
        raise self._refuse("indexed")

    def __str__(self) -> str:
        return f"{self.step}.{self.name}"


def map_structure(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """Rebuild ``value`` through lists, tuples and dicts, passing every other object to ``leaf``.

    Example:
        >>> map_structure({"a": [1, (2,)]}, lambda v: v * 10)
        {'a': [10, (20,)]}
    """
    if isinstance(value, list):
        return [map_structure(v, leaf) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(map_structure(v, leaf) for v in value)
    if isinstance(value, dict):
        return {k: map_structure(v, leaf) for k, v in value.items()}
    return leaf(value)


def iter_leaves(value: Any) -> Iterator[Any]:
    """Yield the objects inside lists, tuples and dicts (see :func:`map_structure`).

    Example:
        >>> list(iter_leaves([1, {"a": (2, 3)}]))
        [1, 2, 3]
    """
    found: list[Any] = []
    map_structure(value, found.append)
    yield from found


@dataclass
class StepNode:
    """One step invocation: its name in the DAG, the step, and its bound arguments."""

    name: str
    step: Step
    args: dict[str, Any]

    def refs(self) -> list[Ref]:
        """The upstream outputs this node takes, in argument order."""
        return [v for v in iter_leaves(list(self.args.values())) if isinstance(v, Ref)]

    @property
    def upstream(self) -> list[str]:
        """Names of the nodes whose outputs this node takes."""
        return list(dict.fromkeys(r.step for r in self.refs()))

    @property
    def tables(self) -> list[str]:
        """The lake tables this node reads: declared with ``reads=`` or passed as ``Table``."""
        passed = [v.name for v in iter_leaves(list(self.args.values())) if isinstance(v, Table)]
        return list(dict.fromkeys([*self.step.reads, *passed]))


@dataclass
class Dag:
    """A pipeline's steps and the data flow between them.

    Example:
        >>> # dag = my_pipeline.trace({"lr": 0.1}); dag.order()
    """

    pipeline: str
    nodes: dict[str, StepNode] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    returns: Any = None

    def order(self) -> list[str]:
        """Node names in a topological order (stable: definition order among equals)."""
        indegree = {name: 0 for name in self.nodes}
        children: dict[str, list[str]] = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for up in node.upstream:
                if up in self.nodes:
                    indegree[node.name] += 1
                    children[up].append(node.name)
        ready = [name for name, degree in indegree.items() if degree == 0]
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for child in children[name]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        if len(order) != len(self.nodes):
            cycle = self._cycle({n for n, d in indegree.items() if d > 0})
            raise PipelineError(
                f"Pipeline '{self.pipeline}' has a cycle: {' -> '.join(cycle)}.",
                hint="A step cannot take its own output, directly or through other steps.",
            )
        return order

    def _cycle(self, stuck: set[str]) -> list[str]:
        """One cycle among the nodes that could not be ordered."""
        start = sorted(stuck)[0]
        path = [start]
        seen = {start}
        current = start
        while True:
            nxt = next(u for u in self.nodes[current].upstream if u in stuck)
            if nxt in seen:
                cycle = [*path[path.index(nxt) :], nxt]
                return list(reversed(cycle))
            path.append(nxt)
            seen.add(nxt)
            current = nxt

    def downstream(self, name: str) -> set[str]:
        """Every node that depends on ``name``, directly or transitively."""
        children: dict[str, set[str]] = {n: set() for n in self.nodes}
        for node in self.nodes.values():
            for up in node.upstream:
                if up in children:
                    children[up].add(node.name)
        found: set[str] = set()
        frontier = [name]
        while frontier:
            for child in children.get(frontier.pop(), ()):
                if child not in found:
                    found.add(child)
                    frontier.append(child)
        return found

    def problems(self) -> list[str]:
        """What is wrong with the DAG: missing inputs, unstorable outputs, unhashable params."""
        from plinth.pipelines.hashing import canonical_json

        found: list[str] = []
        for node in self.nodes.values():
            for ref in node.refs():
                upstream = self.nodes.get(ref.step)
                if upstream is None:
                    found.append(f"step '{node.name}' takes '{ref}', but no step '{ref.step}'")
                elif ref.output not in upstream.step.outputs:
                    found.append(
                        f"step '{node.name}' takes '{ref}', but step '{ref.step}' has outputs "
                        f"{list(upstream.step.outputs)}"
                    )
            fn = inspect.unwrap(node.step.fn)
            if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
                found.append(
                    f"step '{node.name}' is a generator; its output cannot be stored as an "
                    "artifact (return a list instead of yielding)"
                )
            elif inspect.iscoroutinefunction(fn):
                found.append(
                    f"step '{node.name}' is a coroutine function; its output cannot be stored "
                    "(make it a plain function, running the coroutine with asyncio.run)"
                )
            if node.step.cache:
                for key, value in node.args.items():
                    template = map_structure(value, _placeholder)
                    try:
                        canonical_json(template)
                    except TypeError as exc:
                        found.append(
                            f"parameter '{key}' of step '{node.name}' cannot be part of the "
                            f"cache key ({exc}); pass JSON-like values or use @step(cache=False)"
                        )
        for ref in iter_leaves(self.returns):
            if isinstance(ref, Ref) and ref.step not in self.nodes:
                found.append(f"the pipeline returns '{ref}', but no step '{ref.step}'")
        return found

    def lint(self) -> list[str]:
        """Check the DAG before it runs; raise :class:`PipelineError` naming every problem.

        Returns the topological order.

        Example:
            >>> Dag("empty").lint()
            []
        """
        order = self.order()
        found = self.problems()
        if found:
            raise malformed(self.pipeline, found)
        return order

    def to_json(self) -> dict[str, Any]:
        """The DAG as JSON-ready data, steps in topological order (as the catalog keeps it)."""
        from plinth.pipelines.hashing import json_ready

        steps = []
        for name in self.order():
            node = self.nodes[name]
            inputs = {
                key: str(ref)
                for key, value in node.args.items()
                for ref in iter_leaves(value)
                if isinstance(ref, Ref)
            }
            params = {
                key: json_ready(map_structure(value, _placeholder))
                for key, value in node.args.items()
            }
            steps.append(
                {
                    "name": name,
                    "step": node.step.reference,
                    "after": node.upstream,
                    "inputs": inputs,
                    "params": params,
                    "tables": node.tables,
                    "outputs": list(node.step.outputs),
                    "resources": node.step.resources.to_dict(),
                    "retries": node.step.retries,
                    "retry_delay": node.step.retry_delay,
                    "cache": node.step.cache,
                }
            )
        return {"pipeline": self.pipeline, "params": json_ready(self.params), "steps": steps}


def _placeholder(value: Any) -> Any:
    """Stand-ins for edges and tables in a node's parameters (for JSON and lint)."""
    if isinstance(value, Ref):
        return {"$input": str(value)}
    if isinstance(value, Table):
        return {"$table": value.name}
    return value


def malformed(pipeline: str, problems: list[str]) -> PipelineError:
    """The error for a DAG that cannot run, listing its problems.

    Example:
        >>> malformed("flow", ["a", "b"]).message
        "Pipeline 'flow' is malformed: a; b."
    """
    listed = "; ".join(problems)
    return PipelineError(
        f"Pipeline '{pipeline}' is malformed: {listed}.",
        hint="Fix the pipeline function; nothing ran.",
    )


def current_tracer() -> Tracer | None:
    """The tracer of the pipeline function being traced in this context, if any.

    Example:
        >>> current_tracer() is None
        True
    """
    return _TRACER.get()


class Tracer:
    """Records step invocations while a pipeline function runs (see :meth:`Pipeline.trace`)."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.id = next(_TRACE_IDS)
        self.nodes: dict[str, StepNode] = {}
        self.problems: list[str] = []
        self._explicit: set[str] = set()

    def __enter__(self) -> Tracer:
        self._token = _TRACER.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _TRACER.reset(self._token)

    def _node_name(self, step: Step, name: str | None) -> str:
        if name is not None:
            if name in self.nodes:
                self.problems.append(f"two steps are named '{name}'")
            self._explicit.add(name)
            return name
        if step.name not in self.nodes and step.name not in self._explicit:
            return step.name
        for n in itertools.count(2):
            candidate = f"{step.name}_{n}"
            if candidate not in self.nodes and candidate not in self._explicit:
                return candidate
        raise AssertionError("unreachable")

    def _edge(self, node: str, value: Any) -> Any:
        if isinstance(value, Output):
            if value.trace != self.id:
                self.problems.append(
                    f"step '{node}' takes '{value}', a handle from another pipeline trace"
                )
            return Ref(value.step, value.name)
        if isinstance(value, Step):
            self.problems.append(
                f"step '{node}' takes the step '{value.name}' itself; call it to get its output"
            )
        return value

    def invoke(
        self, step: Step, name: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Output | tuple[Output, ...]:
        """Add a node for ``step(*args, **kwargs)`` and return its output handles."""
        node_name = self._node_name(step, name)
        signature = step.signature
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            self.problems.append(f"step '{node_name}' cannot take these arguments ({exc})")
            bound = signature.bind_partial()
        for injected in INJECTED & set(bound.arguments):
            self.problems.append(
                f"step '{node_name}' is passed '{injected}', which the engine provides"
            )
        missing = [
            p.name
            for p in signature.parameters.values()
            if p.name not in bound.arguments
            and p.name not in INJECTED
            and p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if missing:
            listed = ", ".join(f"'{m}'" for m in missing)
            self.problems.append(f"step '{node_name}' is missing input {listed}")
        bound.apply_defaults()
        arguments = {
            key: map_structure(value, lambda v: self._edge(node_name, v))
            for key, value in bound.arguments.items()
            if key not in INJECTED
        }
        self.nodes[node_name] = StepNode(node_name, step, arguments)
        handles = tuple(Output(node_name, o, self.id) for o in step.outputs)
        return handles if step.multiple else handles[0]

    def dag(self, params: dict[str, Any], returned: Any) -> Dag:
        """The traced DAG; raises :class:`PipelineError` if tracing found problems."""
        returns = map_structure(
            returned, lambda v: Ref(v.step, v.name) if isinstance(v, Output) else v
        )
        dag = Dag(self.pipeline, dict(self.nodes), dict(params), returns)
        problems = list(self.problems)
        if problems:
            raise malformed(self.pipeline, problems)
        return dag
