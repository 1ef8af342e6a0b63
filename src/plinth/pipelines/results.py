"""What a pipeline run returns: per-step results and lazily loaded outputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plinth.errors import NotFoundError, PipelineError

if TYPE_CHECKING:
    from plinth.workspace import Workspace

__all__ = ["PipelineResult", "StepResult"]

#: Statuses of a step that has outputs.
DONE = ("succeeded", "cached")


@dataclass(frozen=True)
class StepResult:
    """One step of a finished run: status, attempts, cache key and hit, outputs, timing."""

    name: str
    status: str
    attempts: int
    cache_key: str | None
    cached_from: str | None
    outputs: dict[str, str]
    error: str | None
    log_digest: str | None
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def duration(self) -> float | None:
        """Seconds from the first attempt's start to the end (None if it did not run)."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class _Outputs(Mapping[str, Any]):
    """Step outputs by ``step`` (one output) or ``step.output`` (several), loaded on access."""

    def __init__(self, result: PipelineResult) -> None:
        self._result = result
        self._keys: list[str] = []
        for step in result.steps.values():
            if step.status not in DONE:
                continue
            if step.name in result.single_output:
                self._keys.append(step.name)
            else:
                self._keys.extend(f"{step.name}.{name}" for name in step.outputs)

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        step, _, name = key.partition(".")
        return self._result.output(step, name or None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class PipelineResult:
    """A finished pipeline run: its id, status, steps, and outputs loaded when asked for.

    Example:
        >>> # result = plinth.pipelines.run("flows:train", params={"lr": 0.1})
        >>> # result.steps["train"].status, result.outputs["train"]
    """

    run_id: str
    pipeline: str
    status: str
    params: dict[str, Any]
    steps: dict[str, StepResult]
    error: str | None
    started_at: datetime
    ended_at: datetime
    ws: Workspace = field(repr=False)
    returns: Any = field(default=None, repr=False)
    single_output: dict[str, str] = field(default_factory=dict, repr=False)
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def succeeded(self) -> bool:
        """Whether every step succeeded or was cached."""
        return self.status == "succeeded"

    @property
    def duration(self) -> float:
        """Seconds the run took."""
        return (self.ended_at - self.started_at).total_seconds()

    def count(self, status: str) -> int:
        """How many steps ended with ``status``.

        Example:
            >>> # result.count("cached")
        """
        return sum(1 for s in self.steps.values() if s.status == status)

    def output(self, step: str, name: str | None = None) -> Any:
        """Load one output of a step (its only output when ``name`` is None).

        Example:
            >>> # model = result.output("train")
        """
        found = self.steps.get(step)
        if found is None:
            raise NotFoundError(
                f"Pipeline run {self.run_id} has no step '{step}'.",
                hint=f"Its steps are: {', '.join(self.steps)}.",
            )
        if found.status not in DONE:
            raise PipelineError(
                f"Step '{step}' has no outputs: it {found.status}.",
                hint=f"See 'plinth pipeline show {self.run_id}'.",
            )
        if name is None:
            if len(found.outputs) != 1:
                raise PipelineError(
                    f"Step '{step}' has outputs {list(found.outputs)}; name one.",
                    hint=f"Use result.output('{step}', '{next(iter(found.outputs))}').",
                )
            name = next(iter(found.outputs))
        if name not in found.outputs:
            raise NotFoundError(
                f"Step '{step}' has no output '{name}'.",
                hint=f"Its outputs are: {', '.join(found.outputs)}.",
            )
        digest = found.outputs[name]
        if digest not in self._loaded:
            from plinth.pipelines.serialize import load_value

            # The digest comes from the step's catalog record, so a pickle may be loaded.
            self._loaded[digest] = load_value(self.ws.artifacts.get_bytes(digest), trusted=True)
        return self._loaded[digest]

    @property
    def outputs(self) -> Mapping[str, Any]:
        """Every output of the steps that succeeded or were cached, loaded on access.

        Keys are step names, or ``step.output`` for steps with several outputs.
        """
        return _Outputs(self)

    @property
    def value(self) -> Any:
        """What the pipeline function returned, with output handles replaced by values."""
        from plinth.pipelines.dag import Ref, map_structure

        return map_structure(
            self.returns,
            lambda v: self.output(v.step, v.output) if isinstance(v, Ref) else v,
        )

    def log(self, step: str) -> str:
        """The captured stdout and stderr of a step (every attempt), as text.

        Example:
            >>> # print(result.log("fit"))
        """
        found = self.steps.get(step)
        if found is None:
            raise NotFoundError(f"Pipeline run {self.run_id} has no step '{step}'.")
        if not found.log_digest:
            return ""
        return self.ws.artifacts.get_bytes(found.log_digest).decode("utf-8", "replace")
