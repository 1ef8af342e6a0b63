"""Steps: the ``@step`` decorator, its options, resources and table inputs.

A :class:`Step` wraps a plain function. Called inside a ``@pipeline`` function it does not run:
it records an invocation in the pipeline's DAG and returns output handles. Called anywhere
else it is the plain function, so steps stay easy to unit test.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from plinth.errors import ConfigError, PipelineError

if TYPE_CHECKING:
    from plinth.pipelines.dag import Output

__all__ = ["INJECTED", "Resources", "Step", "Table", "parse_memory", "step"]

#: Parameter names the engine fills in itself (never inputs or parameters of the DAG).
INJECTED = frozenset({"ws"})
#: Name of a step's output when it declares no ``outputs=``.
DEFAULT_OUTPUT = "output"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)

F = TypeVar("F", bound=Callable[..., Any])


def check_name(name: str, what: str = "table") -> str:
    """Return ``name`` if it is a valid table or output name (a SQL identifier), else raise.

    Example:
        >>> check_name("flights")
        'flights'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"'{name}' is not a valid {what} name.",
            hint="Use letters, digits and underscores, starting with a letter or underscore.",
        )
    return name


def check_step_name(name: str) -> str:
    """Return ``name`` if it can name a step invocation (letters, digits, ``_ . -``).

    Example:
        >>> check_step_name("train_small")
        'train_small'
    """
    if not isinstance(name, str) or not _STEP_NAME.match(name):
        raise PipelineError(
            f"'{name}' is not a valid step name.",
            hint="Use letters, digits, '_', '.' and '-', starting with a letter or '_'.",
        )
    return name


def parse_memory(value: int | float | str | None) -> int | None:
    """Return a memory size in bytes from a number or a string like ``"512MiB"`` or ``"2GB"``.

    Example:
        >>> parse_memory("1.5GiB")
        1610612736
        >>> parse_memory(1000)
        1000
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"Memory '{value}' is not a size.", hint="Use bytes or '4GiB'.")
    if isinstance(value, int | float):
        size = value
    else:
        match = _MEMORY.match(str(value))
        if not match:
            raise ConfigError(
                f"Memory '{value}' is not a size.",
                hint="Use a number of bytes or a string like '512MiB', '4GiB' or '2GB'.",
            )
        number, unit = match.groups()
        unit = (unit or "").upper()
        base = 1024 if "I" in unit else 1000
        power = {"": 0, "B": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit[:1] if unit else ""]
        size = float(number) * base**power
    if size <= 0:
        raise ConfigError(f"Memory '{value}' must be positive.", hint="Use e.g. '512MiB'.")
    return int(size)


@dataclass(frozen=True)
class Resources:
    """What one step needs: CPUs, GPUs and memory (bytes, or a string like ``"4GiB"``).

    The local executor runs steps side by side while their CPUs fit the machine; the Ray
    executor hands all three to Ray as the task's ``num_cpus``, ``num_gpus`` and ``memory``.

    Example:
        >>> Resources(cpu=2, memory="1GiB").memory
        1073741824
    """

    cpu: float = 1
    gpu: float = 0
    memory: int | str | None = None

    def __post_init__(self) -> None:
        for name in ("cpu", "gpu"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(
                    f"Resources {name}={value!r} is not a non-negative number.",
                    hint="Use e.g. Resources(cpu=2, gpu=1, memory='8GiB').",
                )
        object.__setattr__(self, "memory", parse_memory(self.memory))

    def to_dict(self) -> dict[str, Any]:
        """The resources as JSON-ready data.

        Example:
            >>> Resources().to_dict()
            {'cpu': 1, 'gpu': 0, 'memory': None}
        """
        return {"cpu": self.cpu, "gpu": self.gpu, "memory": self.memory}


@dataclass(frozen=True)
class Table:
    """A lake table a step reads, passed as an argument (or as a parameter's default).

    The step receives a :class:`~plinth.pipelines.step_context.TableInput` pinned to the table's
    version when the step was scheduled; that version is part of the step's cache key and
    lineage.

    Example:
        >>> Table("flights").name
        'flights'
    """

    name: str

    def __post_init__(self) -> None:
        check_name(self.name)


@dataclass(eq=False)
class Step:
    """A function turned into a pipeline step by :func:`step`.

    Example:
        >>> @step(retries=2)
        ... def double(x: int) -> int:
        ...     return 2 * x
        >>> double(4)  # outside a pipeline it is the plain function
        8
        >>> double.retries
        2
    """

    fn: Callable[..., Any]
    name: str
    retries: int = 0
    retry_delay: float = 1.0
    resources: Resources = field(default_factory=Resources)
    cache: bool = True
    reads: tuple[str, ...] = ()
    outputs: tuple[str, ...] = (DEFAULT_OUTPUT,)
    multiple: bool = False
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.fn)  # type: ignore[arg-type]
        check_step_name(self.name)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(
                f"Step '{self.name}': retries={self.retries!r} is not a whole number >= 0.",
                hint="Use e.g. @step(retries=3, retry_delay=2).",
            )
        if not isinstance(self.retry_delay, int | float) or self.retry_delay < 0:
            raise ConfigError(
                f"Step '{self.name}': retry_delay={self.retry_delay!r} is not seconds >= 0.",
                hint="Use e.g. @step(retries=3, retry_delay=2.5).",
            )
        if not isinstance(self.resources, Resources):
            raise ConfigError(
                f"Step '{self.name}': resources must be a Resources object.",
                hint="Use e.g. @step(resources=Resources(cpu=2, memory='4GiB')).",
            )
        self.reads = tuple(check_name(t) for t in self.reads)
        for alias in self.models:
            model, at, label = alias.partition("@")
            if not (model and at and label):
                raise ConfigError(
                    f"Step '{self.name}': models={alias!r} is not NAME@ALIAS.",
                    hint="Name the aliases it reads, e.g. models=['delay@champion'].",
                )
        for name in self.outputs:
            check_name(name, "output")
        if len(set(self.outputs)) != len(self.outputs) or not self.outputs:
            raise ConfigError(
                f"Step '{self.name}': outputs {list(self.outputs)} must be distinct names.",
                hint="Use e.g. @step(outputs=['train', 'test']).",
            )
        self.signature = inspect.signature(self.fn)

    @property
    def reference(self) -> str:
        """``module:qualname`` of the step's function."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from plinth.pipelines.dag import current_tracer

        tracer = current_tracer()
        if tracer is None:
            return self.fn(*args, **kwargs)
        return tracer.invoke(self, None, args, kwargs)

    def named(self, name: str) -> Callable[..., Output | tuple[Output, ...]]:
        """Invoke this step under another name, to use the same step twice in a pipeline.

        Example:
            >>> # small = train.named("train_small")(data, lr=0.1)
        """
        check_step_name(name)

        def invoke(*args: Any, **kwargs: Any) -> Any:
            from plinth.pipelines.dag import current_tracer

            tracer = current_tracer()
            if tracer is None:
                raise PipelineError(
                    f"'{self.name}.named({name!r})' can only be called inside a @pipeline.",
                    hint="Call the step directly to run its function.",
                )
            return tracer.invoke(self, name, args, kwargs)

        return invoke

    def __reduce__(self) -> tuple[Any, ...]:
        return (_import_step, (self.fn.__module__, self.fn.__qualname__))

    def __repr__(self) -> str:
        return f"<Step {self.name} ({self.reference})>"


def _import_step(module: str, qualname: str) -> Step:
    """Find a step by its module and qualified name (how steps travel to other processes)."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, Step):
        raise PipelineError(f"'{module}:{qualname}' is not a step.")
    return target


def _names(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@overload
def step(fn: F, /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    resources: Resources | None = None,
    cache: bool = True,
    reads: str | Sequence[str] | None = None,
    outputs: str | Sequence[str] | None = None,
    models: str | Sequence[str] | None = None,
) -> Callable[[F], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    resources: Resources | None = None,
    cache: bool = True,
    reads: str | Sequence[str] | None = None,
    outputs: str | Sequence[str] | None = None,
    models: str | Sequence[str] | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Turn a function into a pipeline step.

    ``retries`` more attempts follow a failure, ``retry_delay`` seconds apart. ``resources``
    says what the step needs. ``cache=False`` always runs it. ``reads`` names the lake tables
    it reads itself (their versions join its cache key and lineage). ``outputs`` names several
    outputs: the function then returns a tuple (or a dict) of that many values, and calling
    the step in a pipeline gives one handle per output. ``models`` names registry aliases the
    step reads (``"delay@champion"``): the version each points at when the step is scheduled
    joins its cache key, so a gate is judged again once the champion moves. A parameter
    named ``ws`` receives the workspace.

    Example:
        >>> @step(retries=2, retry_delay=0.5, resources=Resources(cpu=2))
        ... def clean(rows: list[int]) -> list[int]:
        ...     return [r for r in rows if r >= 0]
        >>> clean([1, -1])
        [1]
    """

    def wrap(function: Callable[..., Any]) -> Step:
        if isinstance(function, Step):
            raise PipelineError(f"'{function.name}' is already a step.")
        if not callable(function):
            raise PipelineError("@step decorates a function.", hint="Put @step above a def.")
        if name is None and function.__name__ == "<lambda>":
            raise PipelineError(
                "'<lambda>' is not a valid step name.",
                hint="Name the step: step(name='double')(lambda x: 2 * x), or use a def.",
            )
        names = _names(outputs)
        return Step(
            fn=function,
            name=name or function.__name__,
            retries=retries,
            retry_delay=float(retry_delay),
            resources=resources or Resources(),
            cache=cache,
            reads=_names(reads),
            outputs=names or (DEFAULT_OUTPUT,),
            multiple=outputs is not None and not isinstance(outputs, str),
            models=_names(models),
        )

    if fn is not None:
        return wrap(fn)
    return wrap
