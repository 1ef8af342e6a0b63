"""Rate limits per caller: a token bucket each, refilled at ``PLINTH_RATE_LIMIT`` per second.

A bucket holds at most one second's worth of requests (at least one), so a caller can burst
that many and then goes at the steady rate. A request that finds its bucket empty is refused
with the seconds until a token is back, which the HTTP APIs send as ``429`` with
``Retry-After`` (whole seconds, at least 1). Buckets live in memory, per server process;
full, idle buckets are dropped when there are many.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from plinth.errors import PlinthError

__all__ = ["RateLimited", "RateLimiter"]

_PRUNE_AT = 10_000


class RateLimited(PlinthError):
    """A caller sent more requests per second than its limit allows."""

    status_code = 429

    def __init__(self, message: str, *, hint: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class RateLimiter:
    """Token buckets keyed by caller (a token id, an OIDC subject, a client address).

    Example:
        >>> limiter = RateLimiter(2.0, clock=lambda: 0.0)
        >>> [limiter.check("tok_1") for _ in range(3)]
        [0.0, 0.0, 0.5]
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"A rate limit must be a positive number, not {rate!r}.")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float:
        """Take one request from ``key``'s bucket: ``0.0`` when allowed, else the seconds to
        wait before the next request would be.

        Example:
            >>> RateLimiter(1.0).check("a")
            0.0
        """
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _PRUNE_AT:
                    self._prune(now)
                bucket = self._buckets[key] = [self.burst, now]
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            return (1.0 - tokens) / self.rate

    def enforce(self, key: str) -> None:
        """:meth:`check`, raising :class:`RateLimited` (with ``retry_after``) when refused.

        Example:
            >>> limiter = RateLimiter(1.0)
            >>> limiter.enforce("a")
        """
        wait = self.check(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                f"Too many requests: the limit is {self.rate:g} per second per token.",
                hint=f"Retry after {seconds} second(s), or ask for a higher PLINTH_RATE_LIMIT.",
                retry_after=seconds,
            )

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= _PRUNE_AT:  # all busy: forget the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]
