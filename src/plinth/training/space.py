"""Search spaces for ``plinth tune``: a YAML mapping of parameter name to its range.

::

    lr:    {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    depth: {type: int, low: 2, high: 8}            # optional: step
    opt:   {type: categorical, choices: [adam, sgd]}

A malformed space is a :class:`~plinth.errors.ConfigError` that names the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plinth.errors import ConfigError

TYPES = ("float", "int", "categorical")
_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


@dataclass(frozen=True)
class Dimension:
    """One parameter's range."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """Sample a value with an Optuna trial."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )  # type: ignore[arg-type]
        return trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.log
        )  # type: ignore[arg-type]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_space(data: Any, source: str = "the search space") -> dict[str, Dimension]:
    """Check a loaded search space and return its dimensions by name.

    Example:
        >>> space = parse_space({"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}})
        >>> space["lr"].log
        True
    """
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"{source} must be a mapping of parameter names to ranges.",
            hint="Write e.g. 'lr: {type: float, low: 1.0e-4, high: 0.1, log: true}'.",
        )
    return {str(name): _dimension(str(name), spec, source) for name, spec in data.items()}


def _dimension(name: str, spec: Any, source: str) -> Dimension:
    def fail(problem: str, hint: str) -> ConfigError:
        return ConfigError(f"{source}: parameter '{name}' {problem}", hint=hint)

    if not isinstance(spec, Mapping):
        raise fail("is not a mapping.", "Write it like '{type: float, low: 0.001, high: 0.1}'.")
    kind = spec.get("type")
    if kind not in TYPES:
        raise fail(f"has type {kind!r}.", f"Give 'type' as one of: {', '.join(TYPES)}.")
    unknown = sorted(set(spec) - _KEYS[kind])
    if unknown:
        raise fail(
            f"has unknown key(s): {', '.join(map(str, unknown))}.",
            f"A {kind} parameter takes: {', '.join(sorted(_KEYS[kind]))}.",
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail("needs a non-empty list of choices.", "Write 'choices: [adam, sgd]'.")
        for choice in choices:
            if not (choice is None or isinstance(choice, str | int | float | bool)):
                raise fail(
                    f"has a choice {choice!r} that is not a plain value.",
                    "Choices are strings, numbers, booleans or null.",
                )
        return Dimension(name, kind, choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    if not (_is_number(low) and _is_number(high)):
        raise fail("needs numbers 'low' and 'high'.", "Write e.g. 'low: 2, high: 8'.")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise fail("is an int range with a fractional bound.", "Use whole numbers.")
    if low >= high:
        raise fail(f"has low {low} not below high {high}.", "Make 'low' smaller than 'high'.")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise fail("has a 'log' that is not true or false.", "Write 'log: true' or leave it out.")
    if log and low <= 0:
        raise fail("has a log scale with low <= 0.", "A log range needs a positive 'low'.")
    step = spec.get("step")
    if step is not None:
        if not _is_number(step) or step <= 0:
            raise fail("has a 'step' that is not a positive number.", "Write e.g. 'step: 2'.")
        if log:
            raise fail("has both 'step' and 'log'.", "Use one of them.")
        if kind == "int" and not float(step).is_integer():
            raise fail("is an int range with a fractional step.", "Use a whole step.")
    return Dimension(name, kind, low=low, high=high, log=log, step=step)


def load_space(path: str | Path) -> dict[str, Dimension]:
    """Read and check a search space file.

    Example:
        >>> # load_space("space.yaml")["depth"].type
        >>> # 'int'
    """
    import yaml

    from plinth._core.files import read_text

    path = Path(path)
    text = read_text(
        path, what="the search space", hint="Pass the path of a YAML file with --space."
    )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"The search space '{path}' is not valid YAML: {exc}",
            hint="Fix the syntax; each line is 'name: {type: ..., ...}'.",
        ) from exc
    return parse_space(data, f"Search space '{path}'")
