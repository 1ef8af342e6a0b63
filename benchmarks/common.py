"""Helpers every benchmark script shares: verdicts and CPU-contention notes.

The scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and they
import this module as ``common``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterator
from typing import Any


def verdict(ok: bool) -> str:
    """Return PASS or MISS."""
    return "PASS" if ok else "MISS"


def busy_cpu_seconds() -> float | None:
    """Return the CPU time all processes of the machine have used since boot, if readable."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds() -> float:
    """Return the CPU time of this process and of its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def contention_note(step: str, others: float | None, wall: float) -> str | None:
    """Return a warning if other processes used over a tenth of the CPUs while ``step`` ran."""
    cores = os.cpu_count() or 1
    if others is None or wall <= 0 or others <= 0.1 * wall * cores:
        return None
    return (
        f"note: other processes used {others:.1f} CPU-s ({others / (wall * cores):.0%} of"
        f" {cores} cores) during the {wall:.0f} s of {step}; its timings may be inflated"
    )


@contextlib.contextmanager
def contention(step: str, notes: list[str]) -> Iterator[None]:
    """Append a note to ``notes`` when other processes competed for the CPUs during ``step``."""
    busy0, own0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    yield
    busy1, own1, wall = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter() - wall0
    if busy0 is None or busy1 is None:
        return
    note = contention_note(step, (busy1 - busy0) - (own1 - own0), wall)
    if note:
        notes.append(note)


def latencies(call: Callable[[], Any], calls: int, warmup: int) -> list[float]:
    """Return the wall time of each of ``calls`` calls, in milliseconds, after ``warmup``."""
    for _ in range(warmup):
        call()
    out = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        begin = clock()
        call()
        out.append((clock() - begin) / 1e6)
    return out
