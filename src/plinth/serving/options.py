"""Options of the inference server, with the defaults ``plinth serve`` uses."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from plinth.errors import ConfigError


@dataclass(frozen=True)
class ServeOptions:
    """How ``plinth serve`` batches, limits, logs and reloads.

        ``max_batch_rows``/``max_wait_ms``: a micro-batch holds at most this many rows, and no
        request waits longer than this for company (``batching=False`` predicts each request
        alone). ``max_queue_rows``: beyond this many waiting rows per version, requests get 503
        with Retry-After. ``max_body_bytes``: larger bodies get 413 before they are parsed.
        ``log_predictions``: append every answer to the lake table ``predictions__<model>``
        through a queue of ``log_queue_rows`` rows, flushed every ``log_flush_s`` seconds and on
        shutdown. ``reload_interval_s``: how often the catalog is polled for moved aliases and
        changed deployments (0 turns hot reload off). ``background_load``: answer liveness at once
    and load the models behind it (readiness says when they are in); off, startup itself loads
    them (Ray Serve replicas, which take traffic as soon as startup ends).

        Example:
            >>> ServeOptions(max_wait_ms=5).max_batch_rows
            64
    """

    max_batch_rows: int = 64
    max_wait_ms: float = 2.0
    max_queue_rows: int = 4096
    batching: bool = True
    max_body_bytes: int = 1 << 20
    log_predictions: bool = True
    log_queue_rows: int = 100_000
    log_flush_s: float = 5.0
    reload_interval_s: float = 1.0
    online_features: bool = True
    background_load: bool = True

    def __post_init__(self) -> None:
        checks = {
            "max_batch_rows": self.max_batch_rows >= 1,
            "max_wait_ms": self.max_wait_ms >= 0,
            "max_queue_rows": self.max_queue_rows >= 1,
            "max_body_bytes": self.max_body_bytes >= 1024,
            "log_queue_rows": self.log_queue_rows >= 1,
            "log_flush_s": self.log_flush_s > 0,
            "reload_interval_s": self.reload_interval_s >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"Serving option {bad[0]}={getattr(self, bad[0])!r} is out of range.",
                hint="Batch rows, queue rows and log rows are at least 1; waits and intervals "
                "are not negative; the body limit is at least 1024 bytes.",
            )

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (passed to worker processes)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServeOptions:
        """Options from :meth:`to_dict`'s output.

        Example:
            >>> ServeOptions.from_dict(ServeOptions(max_batch_rows=8).to_dict()).max_batch_rows
            8
        """
        return cls(**data)
