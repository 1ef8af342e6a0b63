"""Prometheus metrics of the inference server (``GET /metrics``).

With several worker processes, each writes its samples to files under
``PROMETHEUS_MULTIPROC_DIR`` (``plinth serve`` sets it) and ``/metrics`` on any worker
answers for all of them.
"""

from __future__ import annotations

import os
from typing import Any

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    """The server's counters, histograms and gauges, with label children cached.

    Example:
        >>> m = ServingMetrics()
        >>> m.request("delay", 3, "primary", 200, 0.002)
        >>> b"plinth_requests_total" in m.render()[0]
        True
    """

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # the *_created series double the exposition for nothing
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        model = ["model", "version"]
        self.requests = Counter(
            "plinth_requests",
            "Answered requests by model, version, route and HTTP status.",
            [*model, "route", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "plinth_request_seconds",
            "Time from request to answer, by model, version and status.",
            [*model, "status"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.predict = Histogram(
            "plinth_predict_seconds",
            "Model compute time per batch.",
            model,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_rows = Histogram(
            "plinth_batch_rows",
            "Rows per micro-batch.",
            model,
            buckets=ROW_BUCKETS,
            registry=reg,
        )
        self.lookup = Histogram(
            "plinth_feature_lookup_seconds",
            "Online feature lookup time per batch.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.queue = Gauge(
            "plinth_queue_rows",
            "Rows waiting for a micro-batch.",
            model,
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.inflight = Gauge(
            "plinth_inflight_requests",
            "Requests being answered now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "plinth_rejected_requests",
            "Requests refused before prediction, by reason (overloaded, too_large, invalid ...).",
            ["model", "reason"],
            registry=reg,
        )
        self.log_rows = Counter(
            "plinth_prediction_log_rows",
            "Prediction log rows by outcome (queued, dropped on a full queue).",
            ["outcome"],
            registry=reg,
        )
        self.ready = Gauge(
            "plinth_model_ready",
            "1 when a served version is loaded and taking traffic.",
            model,
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: Any) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*(str(v) for v in labels))
            self._children[key] = child
        return child

    def request(self, model: str, version: Any, route: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its latency."""
        self._child(self.requests, model, version, route, status).inc()
        self._child(self.latency, model, version, status).observe(seconds)

    def batch(self, model: str, version: Any, rows: int, predict_s: float, lookup_s: float) -> None:
        """Observe one micro-batch: its rows, the model's compute time, the feature lookup."""
        self._child(self.batch_rows, model, version).observe(rows)
        self._child(self.predict, model, version).observe(predict_s)
        if lookup_s:
            self._child(self.lookup, model).observe(lookup_s)

    def queued(self, model: str, version: Any, rows: int) -> None:
        """Set the rows waiting for a batch of one version."""
        self._child(self.queue, model, version).set(rows)

    def set_ready(self, model: str, version: Any, ready: bool) -> None:
        """Mark a version as taking traffic (or retired)."""
        self._child(self.ready, model, version).set(1 if ready else 0)

    def logged(self, outcome: str, rows: int) -> None:
        """Count prediction log rows by outcome (queued, dropped)."""
        self._child(self.log_rows, outcome).inc(rows)

    def reject(self, model: str, reason: str) -> None:
        """Count a request refused before prediction."""
        self._child(self.rejected, model, reason).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers' samples when multiprocess)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
