"""Resource use of one process of a run: wall time, CPU seconds, peak memory, GPU use.

The figures are stored per process (per rank under DDP) and summed for cost accounting.
"""

from __future__ import annotations

import resource
import socket
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Usage:
    """What one process used between the meter's start and now."""

    host: str
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    gpu_count: int
    gpu_seconds: float
    gpu_peak_bytes: int

    def as_dict(self) -> dict[str, Any]:
        """The usage as a plain dict."""
        return asdict(self)


def _cpu_seconds(children: bool) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    if children:
        waited = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += waited.ru_utime + waited.ru_stime
    return total


def _peak_rss_bytes(children: bool) -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    return peak * scale


def process_age_seconds() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or ``None`` where unknown.

    Example:
        >>> age = process_age_seconds()
        >>> age is None or age >= 0
        True
    """
    import os

    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - started)


def _gpu_use() -> tuple[int, int]:
    """GPUs this process used through PyTorch, and their peak allocated bytes summed.

    Only looks when the process imported torch and initialised CUDA itself: importing torch
    just to ask would cost seconds.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return 0, 0
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return 0, 0
        count = torch.cuda.device_count()
        peaks = [torch.cuda.max_memory_allocated(i) for i in range(count)]
    except Exception:  # a broken driver must not fail the run's bookkeeping
        return 0, 0
    used = [p for p in peaks if p > 0]
    return len(used), sum(used)


class ResourceMeter:
    """Measure a process's resource use from the meter's creation, or from process start.

    ``since_start`` counts from the process's start (a launched script's imports and data
    loading belong to its run); ``children`` adds the CPU time of waited-for children.

    Example:
        >>> meter = ResourceMeter()
        >>> meter.usage().wall_seconds >= 0
        True
    """

    def __init__(self, *, since_start: bool = False, children: bool = True) -> None:
        self._children = children
        age = process_age_seconds() if since_start else None
        self._wall = time.perf_counter() - (age or 0.0)
        self._cpu = 0.0 if age is not None else _cpu_seconds(children)

    def usage(self) -> Usage:
        """What the process has used since the meter started."""
        wall = time.perf_counter() - self._wall
        gpu_count, gpu_peak = _gpu_use()
        return Usage(
            host=socket.gethostname(),
            wall_seconds=wall,
            cpu_seconds=max(0.0, _cpu_seconds(self._children) - self._cpu),
            peak_rss_bytes=_peak_rss_bytes(self._children),
            gpu_count=gpu_count,
            gpu_seconds=wall * gpu_count,
            gpu_peak_bytes=gpu_peak,
        )
