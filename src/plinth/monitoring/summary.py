"""The monitoring summary of a model: what the HTML report draws, as one JSON-ready dictionary.

Built from the stored history (drift, quality and latency per window), the outcomes (when the
model's ``models:`` entry names them) and the alerts in the catalog. Histograms are coarse
(about ten bars per column) and no raw rows are included, so the report stays small. Columns a
data contract marks as personal data (``pii``) are left out entirely, even when an older
profile still holds them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.monitoring.drift import NumericReference, Reference, WindowCounts, coarse_cuts

if TYPE_CHECKING:
    from plinth.monitoring.facts import Target
    from plinth.workspace import Workspace

HISTOGRAM_BARS = 10


def monitoring_summary(
    ws: Workspace, target: Target, *, window: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the monitoring report shows for ``target``, JSON-ready.

    Example:
        >>> # monitoring_summary(ws, Target("delay@champion", window="30d"))["drift"][-1]
    """
    from plinth.governance.pii import model_pii
    from plinth.monitoring.alerts import AlertManager
    from plinth.monitoring.facts import observe

    moment = now or datetime.now(UTC)
    chosen = window or target.window
    observation = observe(ws, target, window=chosen, now=moment)
    full = observation.profile
    private = set(model_pii(ws, full.model, [full.version], list(full.references)))
    profile = replace(
        full, references={k: v for k, v in full.references.items() if k not in private}
    )
    drift = []
    quality = []
    latency = []
    for w in observation.windows:
        report = w.drift(profile, target.thresholds)
        bounds = {"start": w.start.isoformat(), "end": w.end.isoformat(), "rows": w.rows}
        drift.append({**bounds, **report.to_dict()})
        columns = w.quality_report(full)
        quality.append({**bounds, "columns": {k: columns[k] for k in columns if k not in private}})
        latency.append({**bounds, **w.latency_report()})
    histograms = {}
    latest = observation.latest
    if latest is not None:
        for name, counts in latest.counts.items():
            if name in profile.references:
                histograms[name] = histogram(profile.references[name], counts)
    manager = AlertManager(ws)
    alerts = []
    for alert in manager.alerts(model=profile.model, limit=200):
        if alert.state == "pending":
            continue
        entry = alert.to_dict()
        entry["events"] = [e.to_dict() for e in manager.history(alert.id)]
        alerts.append(entry)
    return {
        "model": profile.model,
        "version": profile.version,
        "uri": target.uri,
        "generated_at": moment.isoformat(),
        "reference": {"description": profile.reference, "rows": profile.reference_rows},
        "window": chosen,
        "thresholds": dict(target.thresholds.__dict__),
        "drift": drift,
        "histograms": histograms,
        "performance": [p.to_dict() for p in observation.performance],
        "quality": quality,
        "latency": latency,
        "alerts": alerts,
        "facts": _without_columns(observation.facts, private),
    }


def _without_columns(facts: dict[str, float], columns: set[str]) -> dict[str, float]:
    """Facts minus the per-column ones (``drift.<column>.*``, ``quality.<column>.*``) of
    ``columns``."""
    if not columns:
        return facts
    return {
        name: value
        for name, value in facts.items()
        if not any(name.startswith((f"drift.{c}.", f"quality.{c}.")) for c in columns)
    }


def histogram(reference: Reference, counts: WindowCounts) -> dict[str, Any]:
    """Reference and window shares over about ten bars, with readable labels.

    Example:
        >>> ref = NumericReference.fit(np.arange(100.0), bins=20)
        >>> h = histogram(ref, ref.counts(np.arange(50.0)))
        >>> len(h["labels"]) == len(h["reference"]) == len(h["current"]), h["kind"]
        (True, 'numeric')
    """
    ref_counts = reference.counts_
    if isinstance(reference, NumericReference):
        cuts = coarse_cuts(ref_counts, HISTOGRAM_BARS)
        starts = np.r_[0, cuts]
        ends = np.r_[cuts, ref_counts.size]
        labels = []
        for a, b in zip(starts, ends, strict=True):
            low = reference.edges[a - 1] if a > 0 else None
            high = reference.edges[b - 1] if b - 1 < reference.edges.size else None
            if low is None and high is not None:
                labels.append(f"<{_short(high)}")
            elif high is None and low is not None:
                labels.append(f">={_short(low)}")
            elif low is not None and high is not None:
                labels.append(f"{_short(low)}-{_short(high)}")
            else:
                labels.append("all")
        ref_bars = np.add.reduceat(ref_counts, starts)
        cur_bars = np.add.reduceat(counts.counts, starts)
        kind = "numeric"
    else:
        top = min(len(reference.categories), HISTOGRAM_BARS)
        labels = [*reference.categories[:top], "other"]
        ref_bars = np.r_[ref_counts[:top], ref_counts[top:].sum()]
        cur_bars = np.r_[counts.counts[:top], counts.counts[top:].sum()]
        kind = "categorical"
    return {
        "kind": kind,
        "labels": labels,
        "reference": _shares(ref_bars),
        "current": _shares(cur_bars),
    }


def _shares(bars: np.ndarray) -> list[float]:
    total = bars.sum()
    return [round(float(v) / float(total), 5) if total else 0.0 for v in bars]


def _short(value: float) -> str:
    return f"{value:.3g}"
