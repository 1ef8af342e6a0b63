"""Checks of metric points at the call that logs them, so a bad point never reaches a writer.

A writer that met a bad point would fail its whole batch; the caller would see the error
only at the next flush, far from the line that caused it.
"""

from __future__ import annotations

import contextlib
from operator import index
from typing import Any

from plinth.errors import ConfigError


def check_value(key: str, value: Any) -> float:
    """Return a metric value as a float; NaN and infinities are kept as they are.

    Booleans count as numbers (``True`` is 1.0), as in Python and in other trackers.

    Example:
        >>> check_value("loss", 1), check_value("loss", float("inf"))
        (1.0, inf)
    """
    if isinstance(value, float):
        return value
    if isinstance(value, (str, bytes)):
        raise ConfigError(
            f"Metric '{key}' got {value!r} ({type(value).__name__}), not a number.",
            hint="Log numbers (int, float, or a numpy/torch scalar); use tags for text.",
        )
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(
            f"Metric '{key}' got a {type(value).__name__}, which is not a number.",
            hint="Log a number; for a tensor call .item() first.",
        ) from exc


#: Steps a series can hold: the catalog keeps them as int64 and the server accepts this range.
MIN_STEP = -(2**62)
MAX_STEP = 2**62
#: The longest metric name the catalog stores (and the server accepts).
MAX_KEY_LENGTH = 250


def check_key(key: Any) -> str:
    """Return a metric name if it is text of 1 to 250 characters, else raise a ConfigError.

    Example:
        >>> check_key("val/loss")
        'val/loss'
    """
    if not isinstance(key, str):
        raise ConfigError(
            f"Metric name {key!r} ({type(key).__name__}) is not text.",
            hint="Name metrics with strings, e.g. run.log_metric('loss', 0.5).",
        )
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ConfigError(
            f"Metric name {key[:40]!r} has {len(key)} characters; names need 1 to "
            f"{MAX_KEY_LENGTH}.",
            hint="Use a shorter name; put long descriptions in tags.",
        )
    return key


def check_step(key: str, step: Any) -> int:
    """Return a metric step as an int if it is a whole number in the stored range.

    Integers and NumPy/PyTorch integer scalars pass; floats, booleans and text are refused
    rather than rounded, so two steps never land on one by accident.

    Example:
        >>> check_step("loss", 10)
        10
    """
    whole = None
    if not isinstance(step, (bool, float, str, bytes)):
        with contextlib.suppress(TypeError):
            whole = index(step)
    if whole is None:
        raise ConfigError(
            f"Metric '{key}' got step {step!r} ({type(step).__name__}), not an integer.",
            hint="Pass the step as an int, e.g. step=epoch * batches + batch, or leave it "
            "out to count up from the previous step.",
        )
    if not MIN_STEP <= whole <= MAX_STEP:
        raise ConfigError(
            f"Metric '{key}' got step {whole}, outside the stored range -2**62 to 2**62.",
            hint="Count steps from 0.",
        )
    return whole
