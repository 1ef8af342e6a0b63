"""Executors run step attempts: ``local`` (a process per step) and ``ray`` (Ray tasks).

An executor receives :class:`~plinth.pipelines.worker.StepCall` objects and hands back
:class:`~plinth.pipelines.worker.Outcome` objects; scheduling, caching, retries and records
stay in the runner. New executors register a factory by name with :func:`register_executor`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth.pipelines.dag import Dag
    from plinth.pipelines.worker import Outcome, StepCall
    from plinth.workspace import Workspace

__all__ = ["EXECUTORS", "Executor", "get_executor", "register_executor"]


class Executor(ABC):
    """The interface of an executor (subclass it to add one; ``submit`` and ``wait`` are
    required, the other hooks default to doing nothing).

    The runner calls :meth:`check` before recording anything, :meth:`open` once, then
    :meth:`submit` and :meth:`wait` until every step is done, and :meth:`close` at the end
    (after :meth:`cancel` when the run is interrupted).
    """

    name = "executor"

    def check(self, dag: Dag) -> None:  # noqa: B027 - an optional hook: doing nothing is right
        """Reject a DAG this executor cannot run (raise a PlinthError); nothing ran yet."""

    def open(self, ws: Workspace) -> None:  # noqa: B027 - an optional hook: doing nothing is right
        """Get ready to run steps of ``ws``."""

    @abstractmethod
    def submit(self, call: StepCall) -> None:
        """Start (or queue) one attempt of a step; never blocks on the step."""

    @abstractmethod
    def wait(self, timeout: float | None) -> list[Outcome]:
        """Return the attempts that ended, waiting up to ``timeout`` seconds for one."""

    def cancel(self) -> None:  # noqa: B027 - an optional hook: doing nothing is right
        """Stop every attempt still running or queued."""

    def close(self) -> None:  # noqa: B027 - an optional hook: doing nothing is right
        """Release what :meth:`open` acquired."""


#: Executor factories by name: ``module:attribute`` strings are imported on first use.
EXECUTORS: dict[str, str | Callable[..., Executor]] = {
    "local": "plinth.pipelines.executors.local:LocalExecutor",
    "ray": "plinth.pipelines.executors.ray:RayExecutor",
}


def register_executor(name: str, factory: str | Callable[..., Executor]) -> None:
    """Make ``executor=name`` build an executor with ``factory`` (or ``"module:attribute"``).

    Example:
        >>> register_executor("mine", "plinth.pipelines.executors.local:LocalExecutor")
        >>> del EXECUTORS["mine"]
    """
    EXECUTORS[name] = factory


def get_executor(executor: str | Executor, **options: Any) -> Executor:
    """Return an executor instance for a name (or the instance itself).

    Example:
        >>> get_executor("local").name
        'local'
    """
    if isinstance(executor, Executor):
        return executor
    factory = EXECUTORS.get(executor)
    if factory is None:
        raise ConfigError(
            f"Unknown executor '{executor}'.", hint=f"Use one of: {', '.join(sorted(EXECUTORS))}."
        )
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory(**options)
