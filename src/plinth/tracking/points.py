"""Metric points packed into chunks: little-endian int64 steps and times, float64 values.

One chunk holds the points of one series that one writer batch took, so a batch of a
hundred thousand points costs a handful of rows instead of a hundred thousand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: A list of numbers or a 1-D NumPy array.
ArrayLike = Any
_INT = np.dtype("<i8")
_FLOAT = np.dtype("<f8")


@dataclass(frozen=True)
class Series:
    """The points of one metric series, in logging order unless sorted."""

    steps: np.ndarray
    values: np.ndarray
    timestamps_us: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    def sorted(self) -> Series:
        """The points ordered by step; points of one step keep their logging order."""
        order = np.argsort(self.steps, kind="stable")
        return Series(self.steps[order], self.values[order], self.timestamps_us[order])


def pack(steps: ArrayLike, values: ArrayLike, times: ArrayLike) -> dict[str, Any]:
    """The column values of one chunk row (without ``metric_id``).

    Example:
        >>> pack([0, 1], [0.5, 0.25], [10, 20])["last_step"]
        1
    """
    step_array = np.asarray(steps, dtype=_INT)
    return {
        "first_step": int(step_array.min()),
        "last_step": int(step_array.max()),
        "count": len(step_array),
        "steps": step_array.tobytes(),
        "values": np.asarray(values, dtype=_FLOAT).tobytes(),
        "timestamps_us": np.asarray(times, dtype=_INT).tobytes(),
    }


def unpack(chunks: Iterable[tuple[bytes, bytes, bytes]]) -> Series:
    """Join chunk rows ``(steps, values, timestamps_us)`` into one series, in chunk order.

    Example:
        >>> row = pack([0, 1], [0.5, 0.25], [10, 20])
        >>> unpack([(row["steps"], row["values"], row["timestamps_us"])]).values.tolist()
        [0.5, 0.25]
    """
    steps, values, times = [], [], []
    for step_bytes, value_bytes, time_bytes in chunks:
        steps.append(np.frombuffer(step_bytes, dtype=_INT))
        values.append(np.frombuffer(value_bytes, dtype=_FLOAT))
        times.append(np.frombuffer(time_bytes, dtype=_INT))
    if not steps:
        empty_int = np.empty(0, dtype=_INT)
        return Series(empty_int, np.empty(0, dtype=_FLOAT), empty_int)
    return Series(np.concatenate(steps), np.concatenate(values), np.concatenate(times))


def summary(steps: ArrayLike, values: ArrayLike) -> dict[str, Any]:
    """The series summary of a batch: the value at the highest step (the latest logged on
    ties), the min and max ignoring NaN (None when all are NaN), and the count.

    Example:
        >>> summary([0, 2, 2, 1], [3.0, 1.0, 2.0, float("nan")])["last"]
        2.0
    """
    step_array = np.asarray(steps, dtype=_INT)
    value_array = np.asarray(values, dtype=_FLOAT)
    last_index = len(step_array) - 1 - int(np.argmax(step_array[::-1]))
    last = float(value_array[last_index])
    finite = value_array[~np.isnan(value_array)]
    return {
        "last": None if last != last else last,
        "last_step": int(step_array[last_index]),
        "min": float(finite.min()) if len(finite) else None,
        "max": float(finite.max()) if len(finite) else None,
        "count": len(step_array),
    }
