"""Pipelines: the ``@pipeline`` decorator, parameters, tracing, and loading by reference."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from plinth.errors import PipelineError
from plinth.pipelines.dag import Dag, Tracer, current_tracer
from plinth.pipelines.steps import Step, check_step_name

if TYPE_CHECKING:
    from plinth.pipelines.executors import Executor
    from plinth.pipelines.results import PipelineResult
    from plinth.workspace import Workspace

__all__ = ["Pipeline", "load_pipeline", "parse_params", "pipeline"]

F = TypeVar("F", bound=Callable[..., Any])
_TRUE = {"true", "1", "yes", "on", "y"}
_FALSE = {"false", "0", "no", "off", "n"}


class Pipeline:
    """A function whose step calls make up a DAG, made by :func:`pipeline`.

    The function's parameters are the pipeline's parameters (their defaults, overridden per
    run). It is traced once per run: step calls record nodes and return output handles.

    Example:
        >>> @pipeline
        ... def empty(n: int = 3):
        ...     pass
        >>> empty.parameters()
        {'n': 3}
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if isinstance(fn, Step):
            raise PipelineError(
                f"'{fn.name}' is a step; a pipeline is a function that calls steps.",
                hint="Decorate the function that calls the steps with @pipeline.",
            )
        self.fn = fn
        self.name = check_step_name(name or fn.__name__)
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise PipelineError(
                    f"Pipeline '{self.name}' has parameter '{p.name}' of a kind that cannot be "
                    "set by name.",
                    hint="Use plain named parameters with defaults, e.g. def flow(lr=0.1).",
                )

    @property
    def reference(self) -> str:
        """``module:function`` of the pipeline function."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def parameters(self) -> dict[str, Any]:
        """The parameters and their defaults (``inspect.Parameter.empty`` when required)."""
        return {name: p.default for name, p in self.signature.parameters.items()}

    def _target_type(self, name: str) -> Any:
        default = self.signature.parameters[name].default
        if default is not inspect.Parameter.empty and default is not None:
            return type(default)
        try:
            hint = typing.get_type_hints(self.fn).get(name)
        except Exception:
            hint = self.signature.parameters[name].annotation
            hint = {"int": int, "float": float, "bool": bool, "str": str}.get(hint, hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = args[0] if len(args) == 1 else None
        origin = typing.get_origin(hint)
        if origin in (list, dict, tuple):
            return origin
        return hint if isinstance(hint, type) else None

    def _coerce(self, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        target = self._target_type(name)
        if target is str:
            return value
        try:
            if target is bool:
                lowered = value.strip().lower()
                if lowered in _TRUE | _FALSE:
                    return lowered in _TRUE
                raise ValueError(value)
            if target in (int, float):
                return target(value)
            if target in (list, dict, tuple):
                parsed = json.loads(value)
                return tuple(parsed) if target is tuple else parsed
        except ValueError as exc:
            raise PipelineError(
                f"Parameter '{name}' of pipeline '{self.name}' expects "
                f"{target.__name__}, got '{value}'.",
                hint=f"Pass e.g. --param {name}=... with a {target.__name__} value.",
            ) from exc
        if target is None:
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def bind(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return every parameter's value: the defaults, overridden by ``params`` (strings are
        converted to the parameter's type); unknown or missing parameters raise.

        Example:
            >>> @pipeline
            ... def flow(lr: float = 0.1, epochs: int = 2):
            ...     pass
            >>> flow.bind({"epochs": "5"})
            {'lr': 0.1, 'epochs': 5}
        """
        given = dict(params or {})
        known = self.signature.parameters
        unknown = [k for k in given if k not in known]
        if unknown:
            listed = ", ".join(known) or "none"
            raise PipelineError(
                f"Pipeline '{self.name}' has no parameter {', '.join(repr(u) for u in unknown)}.",
                hint=f"Its parameters are: {listed}.",
            )
        values: dict[str, Any] = {}
        for name, p in known.items():
            if name in given:
                values[name] = self._coerce(name, given[name])
            elif p.default is not inspect.Parameter.empty:
                values[name] = p.default
            else:
                raise PipelineError(
                    f"Pipeline '{self.name}' needs parameter '{name}', which has no default.",
                    hint=f"Pass it: --param {name}=VALUE (or params={{'{name}': ...}}).",
                )
        return values

    def trace(self, params: Mapping[str, Any] | None = None) -> Dag:
        """Run the function once with its parameters to build the DAG (no step runs).

        Example:
            >>> # dag = flow.trace({"lr": 0.2}); list(dag.nodes)
        """
        values = self.bind(params)
        if current_tracer() is not None:
            raise PipelineError(
                f"Pipeline '{self.name}' was called inside another pipeline.",
                hint="Call its steps directly, or factor the shared part into a function.",
            )
        with Tracer(self.name) as tracer:
            try:
                returned = self.fn(**values)
            except PipelineError:
                raise
            except Exception as exc:
                raise PipelineError(
                    f"Tracing pipeline '{self.name}' raised {type(exc).__name__}: {exc}.",
                    hint="A pipeline function only calls steps and passes their outputs on; "
                    "move computations into steps.",
                ) from exc
        return tracer.dag(values, returned)

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        executor: str | Executor = "local",
        ws: Workspace | None = None,
        *,
        cache: bool = True,
    ) -> PipelineResult:
        """Run the pipeline (see :func:`plinth.pipelines.run`).

        Example:
            >>> # result = flow.run({"lr": 0.2})
        """
        from plinth.pipelines.runner import run

        return run(self, params, executor, ws, cache=cache)

    def __call__(self, **params: Any) -> PipelineResult:
        return self.run(params)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} ({self.reference})>"


@overload
def pipeline(fn: F, /) -> Pipeline: ...


@overload
def pipeline(*, name: str | None = None) -> Callable[[F], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Turn a function that calls steps into a pipeline; its parameters are the pipeline's.

    Example:
        >>> from plinth.pipelines import step
        >>> @step
        ... def load(n: int) -> list[int]:
        ...     return list(range(n))
        >>> @step
        ... def total(rows: list[int]) -> int:
        ...     return sum(rows)
        >>> @pipeline
        ... def flow(n: int = 10):
        ...     return total(load(n))
        >>> list(flow.trace().nodes)
        ['load', 'total']
    """
    if fn is not None:
        return Pipeline(fn, name)
    return lambda function: Pipeline(function, name)


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """Parse ``k=v`` strings (from ``--param``) into a dict.

    Example:
        >>> parse_params(["lr=0.1", "name=a=b"])
        {'lr': '0.1', 'name': 'a=b'}
    """
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PipelineError(
                f"'{pair}' is not a parameter.", hint="Use --param NAME=VALUE, e.g. lr=0.1."
            )
        params[key.strip()] = value
    return params


def _import_file(path: Path) -> Any:
    """Import a Python file as a module named after it; its folder joins ``sys.path`` so step
    processes can import it too."""
    name = path.stem
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PipelineError(f"Cannot import '{path}'.", hint="Point at a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_pipeline(target: str | Pipeline | Callable[..., Any]) -> Pipeline:
    """Return the pipeline named by ``module:function`` or ``path/to/file.py:function``.

    The current directory is importable, as with ``python -m``.

    Example:
        >>> load_pipeline("plinth.examples.pipelines:demo").name  # doctest: +SKIP
        'demo'
    """
    if isinstance(target, Pipeline):
        return target
    if callable(target) and not isinstance(target, str):
        return Pipeline(target)
    module_name, sep, attribute = str(target).rpartition(":")
    if not sep or not module_name or not attribute:
        raise PipelineError(
            f"'{target}' is not a pipeline reference.",
            hint="Use module:function (e.g. flows:train) or path/to/file.py:function.",
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise PipelineError(f"The file '{module_name}' does not exist.")
            module = _import_file(path)
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PipelineError(
            f"Cannot import module '{module_name}': {exc}.",
            hint="Run from the folder that holds it, or pass path/to/file.py:function.",
        ) from exc
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise PipelineError(
                f"Module '{module_name}' has no pipeline '{attribute}'.",
                hint="Check the name after the colon.",
            )
    if isinstance(found, Pipeline):
        return found
    if isinstance(found, Step):
        raise PipelineError(
            f"'{target}' is a step, not a pipeline.",
            hint="Name the @pipeline function that calls the steps.",
        )
    if callable(found):
        return Pipeline(found)
    raise PipelineError(f"'{target}' is not a pipeline.", hint="Decorate it with @pipeline.")
