"""What a running step can ask about itself: :func:`context` and pinned table inputs."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plinth.errors import PipelineError

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.workspace import Workspace

__all__ = ["StepContext", "TableInput", "context"]

_CURRENT: ContextVar[StepContext | None] = ContextVar("plinth_step_context", default=None)


@dataclass
class StepContext:
    """The step being run: its pipeline run, name, attempt, table versions and workspace.

    The workspace is opened on first use, in the process that runs the step.
    """

    pipeline_run_id: str
    step: str
    attempt: int
    tables: dict[str, int]
    settings: dict[str, Any]
    _ws: Workspace | None = field(default=None, repr=False)

    @property
    def ws(self) -> Workspace:
        """The workspace the pipeline runs in."""
        if self._ws is None:
            from plinth._core.settings import Settings
            from plinth.workspace import Workspace

            self._ws = Workspace(settings=Settings(**self.settings))
        return self._ws

    def close(self) -> None:
        """Close the workspace if the step opened it."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None


def context() -> StepContext:
    """Return the context of the step running now.

    Example:
        >>> # @step
        >>> # def train(data):
        >>> #     print(context().pipeline_run_id, context().attempt)
    """
    current = _CURRENT.get()
    if current is None:
        raise PipelineError(
            "context() is only available while a pipeline step runs.",
            hint="Call it inside a @step function that a pipeline runs.",
        )
    return current


def activate(ctx: StepContext | None) -> Any:
    """Make ``ctx`` the current step context; returns a token for :func:`deactivate`.

    Example:
        >>> deactivate(activate(None))
    """
    return _CURRENT.set(ctx)


def deactivate(token: Any) -> None:
    """Restore the context that was current before :func:`activate`.

    Example:
        >>> deactivate(activate(None))
    """
    _CURRENT.reset(token)


@dataclass(frozen=True)
class TableInput:
    """A lake table pinned to one version, as a step receives a ``Table(...)`` argument.

    Example:
        >>> # @step
        >>> # def count(flights: Table = Table("flights")) -> int:
        >>> #     return flights.read(columns=["dep_delay"]).num_rows
    """

    name: str
    version: int

    @property
    def ref(self) -> str:
        """``table@version``."""
        return f"{self.name}@{self.version}"

    def _ws(self) -> Workspace:
        return context().ws

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Read this version of the table into an Arrow table."""
        return self._ws().lake.read(self.name, version=self.version, columns=columns)

    def scan(self) -> Any:
        """A ``pyarrow.dataset`` over this version of the table."""
        return self._ws().lake.scan(self.name, version=self.version)

    def to_pandas(self, columns: list[str] | None = None) -> Any:
        """Read this version of the table into a pandas DataFrame."""
        return self.read(columns).to_pandas()
