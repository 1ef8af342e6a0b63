"""The numbers alert rules are written over ("facts"), computed for one monitored model.

Names are dotted; for the latest window of the stored history:

- ``drift.share`` (share of drifted columns), ``drift.count``, and per column
  ``drift.<column>.psi|wasserstein|ks|js|drifted`` (``drifted`` is 1 or 0; the prediction is
  the column ``prediction``);
- ``quality.<column>.null_share|outside_reference_share|out_of_range_share|unseen_share`` and
  ``quality.max_null_share``, ``quality.max_out_of_range_share``;
- ``traffic.rows`` and ``latency.p50_ms|p95_ms|p99_ms`` (from the logged latencies);
- ``performance.<metric>`` and ``performance.labelled`` for the latest window with outcomes;
- ``freshness.log_age_s`` (seconds since the prediction log last grew) and
  ``freshness.outcomes_age_s``;
- ``serving.requests``, ``serving.error_rate`` (share of 5xx answers) and
  ``serving.p99_ms`` from the server's ``/metrics`` when a ``metrics_url`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from plinth.monitoring.drift import Thresholds

if TYPE_CHECKING:
    from plinth.monitoring.history import StoredWindow
    from plinth.monitoring.profile import MonitorProfile
    from plinth.workspace import Workspace


@dataclass(frozen=True)
class Outcomes:
    """Where a model's labels arrive: a lake table, its label column and how to join it."""

    table: str
    label: str
    on: tuple[str, ...] = ("request_id",)
    time_column: str | None = None
    tolerance_s: float | None = None


@dataclass(frozen=True)
class Target:
    """A monitored model and how to monitor it."""

    uri: str
    window: str = "1d"
    reference: str | None = None
    reference_where: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    outcomes: Outcomes | None = None
    slices: tuple[str, ...] = ()
    metrics_url: str | None = None


@dataclass
class Observation:
    """What monitoring saw for a target: the facts and the windows they came from."""

    target: Target
    profile: MonitorProfile
    facts: dict[str, float]
    windows: list[StoredWindow]
    performance: list[Any]
    rows_added: int

    @property
    def latest(self) -> StoredWindow | None:
        """The newest window of traffic, if any."""
        return self.windows[-1] if self.windows else None


def observe(
    ws: Workspace, target: Target, *, window: str | None = None, now: datetime | None = None
) -> Observation:
    """Fold new traffic into the history and compute the facts for ``target``.

    Example:
        >>> # observe(ws, Target("delay@champion", window="30d")).facts["drift.share"]
    """
    from plinth.monitoring.history import stored_windows, update_history
    from plinth.monitoring.profile import ensure_profile

    moment = now or datetime.now(UTC)
    profile = ensure_profile(
        ws, target.uri, reference=target.reference, where=target.reference_where
    )
    update = update_history(ws, profile)
    windows = stored_windows(ws, profile, window or target.window)
    facts: dict[str, float] = {}
    if windows:
        facts.update(window_facts(profile, windows[-1], target.thresholds))
    facts.update(_freshness(ws, profile.model, target, moment))
    performance: list[Any] = []
    if target.outcomes is not None and _exists(ws, target.outcomes.table):
        performance = _performance(ws, target, window or target.window)
        facts.update(performance_facts(performance))
    if target.metrics_url:
        facts.update(serving_facts(target.metrics_url, profile.model))
    return Observation(target, profile, facts, windows, performance, update.rows)


def window_facts(
    profile: MonitorProfile, window: StoredWindow, thresholds: Thresholds | None = None
) -> dict[str, float]:
    """Drift, quality, traffic and latency facts of one stored window.

    Example:
        >>> # window_facts(profile, stored_windows(ws, profile, "1d")[-1])["drift.share"]
    """
    facts: dict[str, float] = {"traffic.rows": float(window.rows)}
    report = window.drift(profile, thresholds)
    facts["drift.share"] = report.share_drifted
    facts["drift.count"] = float(len(report.flagged()))
    for column in report.columns:
        base = f"drift.{column.column}"
        facts[f"{base}.psi"] = column.psi
        facts[f"{base}.drifted"] = 1.0 if column.drifted else 0.0
        for name in ("wasserstein", "ks", "js"):
            value = getattr(column, name)
            if value is not None:
                facts[f"{base}.{name}"] = float(value)
    quality = window.quality_report(profile)
    for column, summary in quality.items():
        for name in ("null_share", "outside_reference_share", "out_of_range_share", "unseen_share"):
            facts[f"quality.{column}.{name}"] = float(summary[name])
    if quality:
        facts["quality.max_null_share"] = max(q["null_share"] for q in quality.values())
        facts["quality.max_out_of_range_share"] = max(
            q["out_of_range_share"] for q in quality.values()
        )
    for name, value in window.latency_report().items():
        if value is not None:
            facts[f"latency.{name}"] = value
    return facts


def performance_facts(windows: list[Any]) -> dict[str, float]:
    """``performance.*`` facts from the newest window that has labelled rows.

    Example:
        >>> performance_facts([])
        {}
    """
    for window in reversed(windows):
        if window.labelled:
            facts = {
                f"performance.{k}": float(v)
                for k, v in window.metrics.items()
                if isinstance(v, int | float) and not math.isnan(v)
            }
            facts["performance.labelled"] = float(window.labelled)
            return facts
    return {}


def _exists(ws: Workspace, table: str) -> bool:
    """Whether the outcomes table exists yet (labels may not have arrived)."""
    from plinth.errors import NotFoundError

    try:
        ws.lake.table(table.partition("@")[0])
    except NotFoundError:
        return False
    return True


def _performance(ws: Workspace, target: Target, window: str) -> list[Any]:
    from datetime import timedelta

    from plinth.monitoring.performance import log_performance

    outcomes = target.outcomes
    assert outcomes is not None
    return log_performance(
        ws,
        target.uri,
        outcomes.table,
        label=outcomes.label,
        on=outcomes.on,
        time_column=outcomes.time_column,
        tolerance=timedelta(seconds=outcomes.tolerance_s) if outcomes.tolerance_s else None,
        window=window,
        slice_by=target.slices,
    )


def _freshness(ws: Workspace, model: str, target: Target, now: datetime) -> dict[str, float]:
    from plinth.errors import NotFoundError
    from plinth.serving.prediction_log import log_table

    out: dict[str, float] = {}
    tables = {"freshness.log_age_s": log_table(model)}
    if target.outcomes is not None:
        tables["freshness.outcomes_age_s"] = target.outcomes.table.partition("@")[0]
    for fact, table in tables.items():
        try:
            latest = ws.lake.table(table).latest
        except NotFoundError:
            continue
        if latest is not None:
            out[fact] = max(0.0, (now - latest.created_at).total_seconds())
    return out


def serving_facts(url: str, model: str, timeout_s: float = 5.0) -> dict[str, float]:
    """Request count, 5xx share and p99 latency of ``model`` from a server's ``/metrics``.

    Counters are totals since the server started. An unreachable server gives no facts (a
    rule on them then does not hold) rather than an error.

    Example:
        >>> # serving_facts("http://127.0.0.1:8000/metrics", "delay")["serving.error_rate"]
    """
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(url, timeout=timeout_s).text
    except httpx.HTTPError:
        return {}
    total = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            if sample.name == "plinth_requests_total":
                total += sample.value
                if str(sample.labels.get("status", "")).startswith("5"):
                    errors += sample.value
            elif sample.name == "plinth_request_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    facts = {"serving.requests": total}
    if total:
        facts["serving.error_rate"] = errors / total
    p99 = _histogram_quantile(buckets, 0.99)
    if p99 is not None:
        facts["serving.p99_ms"] = p99 * 1000
    return facts


def _histogram_quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """Prometheus-style quantile of cumulative ``le`` buckets (linear within a bucket)."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def target_facts_summary(facts: Mapping[str, float], limit: int = 8) -> str:
    """A one-line summary of the most telling facts, for terminals and logs.

    Example:
        >>> target_facts_summary({"drift.share": 0.25, "traffic.rows": 100.0})
        'rows 100, drifted share 25%'
    """
    parts = []
    if "traffic.rows" in facts:
        parts.append(f"rows {int(facts['traffic.rows']):,}")
    if "drift.share" in facts:
        parts.append(f"drifted share {facts['drift.share']:.0%}")
    drifted = [k.split(".")[1] for k, v in facts.items() if k.endswith(".drifted") and v >= 1.0][
        :limit
    ]
    if drifted:
        parts.append("drifted: " + ", ".join(drifted))
    if "performance.auc" in facts:
        parts.append(f"AUC {facts['performance.auc']:.3f}")
    return ", ".join(parts)
