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


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_bytes() -> int:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    return max(own, children) * scale


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
    """Measure a process's resource use from its creation on.

    Example:
        >>> meter = ResourceMeter()
        >>> meter.usage().wall_seconds >= 0
        True
    """

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = _cpu_seconds()

    def usage(self) -> Usage:
        """What the process has used since the meter started."""
        wall = time.perf_counter() - self._wall
        gpu_count, gpu_peak = _gpu_use()
        return Usage(
            host=socket.gethostname(),
            wall_seconds=wall,
            cpu_seconds=max(0.0, _cpu_seconds() - self._cpu),
            peak_rss_bytes=_peak_rss_bytes(),
            gpu_count=gpu_count,
            gpu_seconds=wall * gpu_count,
            gpu_peak_bytes=gpu_peak,
        )
