"""A self-contained HTML monitoring report for a served model, from a JSON-ready summary.

The page has no scripts and fetches nothing: inline SVG charts and plain tables only, in the
style of :mod:`plinth.tracking.plot` (whose CSS, escaping and number formatting it reuses).
Sections: a header with a one-line summary, drift (share of drifted features per window, then
one small multiple per feature: PSI and normalized Wasserstein or Jensen-Shannon over windows,
the reference-vs-current histogram, new and missing categories, and a table of the latest
statistics), performance (a chart per metric, the latest window's slices), data quality on
traffic, latency and an alert timeline with each alert's events.

``summary`` is a plain dictionary (so a remote service can produce it) with the keys
``model``, ``version``, ``uri``, ``generated_at``, ``reference``, ``window``, ``drift``,
``thresholds``, ``histograms``, ``performance``, ``quality``, ``latency`` and ``alerts``; every
key but ``model`` may be missing or empty, and the section then says "no data yet". No raw rows
are embedded, and long series are thinned to the chart's pixel width, so a year of daily windows
over 30 features stays well under a megabyte.

Example:
    >>> page = render_report({"model": "delay", "drift": []})
    >>> page.startswith("<!DOCTYPE html>") and "no data yet" in page and "<script" not in page
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from plinth.monitoring.drift import Thresholds

# The page shares the tracking charts' look: their CSS, escaping, compact SVG numbers, axis
# ticks and number format. Their ``line_chart`` is fixed to one size with a numeric "step"
# axis, so the charts below (date axes, threshold lines, marked windows, small multiples) are
# drawn here.
from plinth.tracking.plot import (
    _CSS,
    PALETTE,
    _e,
    _num,
    _range,
    format_number,
    nice_ticks,
)

__all__ = ["render_report", "write_report"]

BLUE, RED, GREEN, AMBER, PURPLE, TEAL, ORANGE, GREY = PALETTE[:8]
REF_GREY = "#b8c0cc"
SEVERITY_COLORS = {"critical": RED, "error": RED, "warning": AMBER, "info": BLUE}
METRICS = ("auc", "accuracy", "log_loss", "brier", "mae", "rmse")
HIGHER_IS_BETTER = {"auc", "accuracy", "precision", "recall", "f1", "r2"}
MAX_FEATURE_CHARTS = 60
MAX_LINES = 10
MAX_SLICE_VALUES = 20
MAX_LANES = 30
MAX_EVENTS = 20
MAX_CATEGORIES = 10

_EXTRA_CSS = """
svg{max-width:100%;height:auto;display:block}.grid{display:grid;gap:10px 18px;
grid-template-columns:repeat(auto-fill,minmax(440px,1fr))}.card{border:1px solid #eef1f5;
border-radius:6px;padding:6px 8px}.card h3{font-size:14px;margin:0 0 2px}
.badge{font-size:11px;border-radius:8px;padding:0 6px;margin-left:6px;background:#eef1f5}
.badge.bad{background:#fde8e8;color:#b42318}.badge.ok{background:#e8f5ee;color:#1f7a45}
tr.warn td,td.warn{background:#fff4e5}td.bad{background:#fde8e8}.small{font-size:12px}
.summary{margin:8px 0 0;font-weight:500}ul.ev{margin:0;padding-left:16px}
"""


# ---------------------------------------------------------------------------------------------
# Reading the summary defensively: any key may be missing, None or of an odd type.


def _float(value: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _list(value: Any) -> list[Mapping[str, Any]]:
    """The mappings in a list (anything else: an empty list)."""
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _time(value: Any) -> datetime | None:
    """An aware datetime from an ISO string (naive ones taken as UTC), or None."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stamp(value: Any) -> str:
    """A readable timestamp: ``2026-11-27 10:00 UTC`` (or the text as given)."""
    parsed = _time(value)
    if parsed is None:
        return str(value) if value else "-"
    offset = parsed.utcoffset()
    zone = " UTC" if not offset else parsed.strftime(" %z")
    return parsed.strftime("%Y-%m-%d %H:%M") + zone


def _date_format(times: Iterable[datetime | None]) -> Callable[[datetime], str]:
    """A short date format for an axis: ``MM-DD``, ``YYYY-MM-DD``, or with ``HH:MM``."""
    known = [t for t in times if t is not None]
    if not known:
        return lambda t: t.strftime("%Y-%m-%d")
    first, last = min(known), max(known)
    if last - first < timedelta(days=3) and any((t.hour, t.minute) != (0, 0) for t in known):
        return lambda t: t.strftime("%m-%d %H:%M")
    if first.year == last.year:
        return lambda t: t.strftime("%m-%d")
    return lambda t: t.strftime("%Y-%m-%d")


def _share(value: float | None) -> str:
    """A share as a percentage: ``12.5%``."""
    if value is None:
        return "-"
    if value == 0:
        return "0%"
    percent = value * 100
    if abs(percent) < 0.1:
        return f"{percent:.2g}%"
    return f"{percent:.1f}%".replace(".0%", "%")


def _cell(text: str, *, numeric: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("n" if numeric else "", css) if c)
    return f"<td class='{classes}'>{text}</td>" if classes else f"<td>{text}</td>"


def _table(head: Sequence[str], rows: Sequence[str]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _note(text: str) -> str:
    return f"<p class='muted'>{_e(text)}</p>"


def _no_data(what: str) -> str:
    return _note(f"{what}: no data yet.")


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


# ---------------------------------------------------------------------------------------------
# Charts.


@dataclass(frozen=True)
class _Series:
    """One line of a chart: a value per window (None leaves a gap)."""

    label: str
    color: str
    values: Sequence[float | None]
    marks: Sequence[int] = ()  # windows to mark with a dot (e.g. drifted ones)


@dataclass(frozen=True)
class _Frame:
    """A chart's size, margins and the mapping of window index and value to pixels."""

    width: int
    height: int
    count: int
    low: float
    high: float
    left: int = 46
    right: int = 10
    top: int = 10
    bottom: int = 22

    @property
    def inner(self) -> tuple[float, float]:
        return self.width - self.left - self.right, self.height - self.top - self.bottom

    def x(self, index: float) -> float:
        w = self.inner[0]
        if self.count <= 1:
            return self.left + w / 2
        return self.left + w * index / (self.count - 1)

    def y(self, value: float) -> float:
        h = self.inner[1]
        return self.top + h - h * (value - self.low) / (self.high - self.low)


def _thin(values: Sequence[float | None], budget: int) -> list[tuple[int, float | None]]:
    """``(index, value)`` pairs, at most about ``budget`` of them.

    A longer series is cut into ``budget / 2`` buckets, each kept as its lowest and highest
    value in window order, so spikes survive; a bucket with no value becomes a gap.
    """
    if len(values) <= budget:
        return list(enumerate(values))
    buckets = max(budget // 2, 1)
    size = len(values) / buckets
    kept: list[tuple[int, float | None]] = []
    for bucket in range(buckets):
        start, stop = int(bucket * size), int((bucket + 1) * size)
        finite = [(v, i) for i in range(start, stop) if (v := values[i]) is not None]
        if not finite:
            kept.append((start, None))
            continue
        (low, i_low), (high, i_high) = min(finite), max(finite)
        kept.extend(sorted({(i_low, low), (i_high, high)}))
    return kept


def _line_path(frame: _Frame, values: Sequence[float | None]) -> tuple[str, list[str]]:
    """SVG path data for a series (a gap at each None), and the points standing alone."""
    parts: list[str] = []
    lone: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) == 1:
            lone.append(run[0])
        elif run:
            parts.append("M" + run[0] + "L" + " ".join(run[1:]))
        run.clear()

    for index, value in _thin(values, int(frame.inner[0])):
        if value is None:
            flush()
            continue
        point = f"{_num(frame.x(index))},{_num(frame.y(value))}"
        if not run or run[-1] != point:
            run.append(point)
    flush()
    return "".join(parts), lone


def _dots(points: Iterable[str], color: str, size: float = 5) -> str:
    """Round dots as zero-length sub-paths of one path (far smaller than one circle each)."""
    data = "".join(f"M{p}h0" for p in dict.fromkeys(points))
    if not data:
        return ""
    return (
        f'<path d="{data}" stroke="{color}" stroke-width="{_num(size)}" '
        f'stroke-linecap="round" fill="none"/>'
    )


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{_e(title)}</title>'
    )


def _window_labels(windows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A short axis label per window: its start date, or ``#n`` when it has none."""
    starts = [_time(w.get("start")) for w in windows]
    fmt = _date_format(starts)
    return [fmt(t) if t is not None else f"#{i + 1}" for i, t in enumerate(starts)]


def _series_chart(
    labels: Sequence[str],
    series: Sequence[_Series],
    *,
    title: str,
    size: tuple[int, int] = (900, 220),
    thresholds: Sequence[tuple[float, str]] = (),
    floor: float | None = 0.0,
    ceiling: float | None = None,
    fmt: Callable[[float], str] = format_number,
) -> str:
    """An SVG line chart of values per window: date ticks, dashed thresholds, marked windows.

    ``floor``/``ceiling`` clamp the padded value range when the data stays within them (shares
    and distances never go below 0).
    """
    count = len(labels)
    values = [v for s in series for v in s.values if v is not None]
    above_floor = floor is not None and floor <= min(values, default=floor)
    extra = [floor] if above_floor and floor is not None else []
    low, high = _range(values + extra + [t for t, _ in thresholds], 0.06)
    if above_floor and floor is not None and low < floor:
        low = floor
    if ceiling is not None and high > ceiling >= max(values, default=ceiling):
        high = ceiling
    if low == high:
        low, high = low - 1, high + 1
    frame = _Frame(size[0], size[1], count, low, high)
    w, h = frame.inner
    base = _num(frame.top + h)
    right = _num(frame.left + w)
    parts = [_svg_open(frame.width, frame.height, title)]
    grid, text = [], []
    for value in nice_ticks(low, high):
        py = _num(frame.y(value))
        grid.append(f"M{frame.left},{py}H{right}")
        text.append(
            f'<text x="{frame.left - 4}" y="{_num(frame.y(value) + 4)}" '
            f'text-anchor="end">{_e(fmt(value))}</text>'
        )
    ticks = nice_ticks(0, count - 1, integers=True) if count > 1 else [0.0]
    if count > 1 and len(ticks) > int(w // 70):
        ticks = ticks[:: math.ceil(len(ticks) / max(int(w // 70), 1))]
    for value in ticks:
        index = int(value)
        if not 0 <= index < count:
            continue
        px = _num(frame.x(index))
        grid.append(f"M{px},{base}v4")
        anchor = "start" if index == 0 else "end" if index == count - 1 else "middle"
        text.append(
            f'<text x="{px}" y="{_num(frame.top + h + 15)}" '
            f'text-anchor="{anchor}">{_e(labels[index])}</text>'
        )
    parts.append(f'<path d="{"".join(grid)}" stroke="#dde2ea" fill="none"/>')
    parts.append(f'<path d="M{frame.left},{base}H{right}" stroke="#98a2b3"/>')
    parts.extend(text)
    for value, color in thresholds:
        py = _num(frame.y(value))
        parts.append(
            f'<path d="M{frame.left},{py}H{right}" stroke="{color}" stroke-dasharray="5 4" '
            f'stroke-opacity=".8"><title>threshold {_e(fmt(value))}</title></path>'
        )
    for line in series:
        finite = [v for v in line.values if v is not None]
        tip = f"<title>{_e(line.label)}: last {_e(fmt(finite[-1]) if finite else '-')}</title>"
        data, lone = _line_path(frame, line.values)
        if data:
            parts.append(
                f'<path d="{data}" fill="none" stroke="{line.color}" stroke-width="1.5" '
                f'stroke-linejoin="round">{tip}</path>'
            )
        parts.append(_dots(lone, line.color, 4))
        marked = [  # whole pixels: a dot is 5 px wide, and long series share pixels
            f"{round(frame.x(i))},{round(frame.y(v))}"
            for i in line.marks
            if 0 <= i < len(line.values) and (v := line.values[i]) is not None
        ]
        parts.append(_dots(marked, RED, 5))
    parts.append("</svg>")
    return "".join(parts)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    spans = "".join(f"<span class='sw' style='background:{c}'></span>{_e(t)}" for t, c in items)
    return f"<div class='legend small'>{spans}</div>"


def _bars_chart(
    labels: Sequence[str],
    reference: Sequence[float | None],
    current: Sequence[float | None],
    *,
    title: str,
    size: tuple[int, int] = (440, 130),
) -> str:
    """Grouped bars of two share vectors over the same bins (reference grey, current blue)."""
    count = min(len(labels), len(reference), len(current), 50)
    ref = [max(reference[i] or 0.0, 0.0) for i in range(count)]
    cur = [max(current[i] or 0.0, 0.0) for i in range(count)]
    high = max([*ref, *cur, 1e-9]) * 1.08
    frame = _Frame(size[0], size[1], 2, 0.0, high, left=40)
    w, h = frame.inner
    slot = w / max(count, 1)
    bar = max(slot * 0.4, 0.5)
    base = frame.top + h
    parts = [
        _svg_open(frame.width, frame.height, title),
        f'<path d="M{frame.left},{_num(base)}H{_num(frame.left + w)}" stroke="#98a2b3"/>',
    ]
    for value in nice_ticks(0.0, high)[1:]:
        parts.append(
            f'<text x="{frame.left - 4}" y="{_num(frame.y(value) + 4)}" '
            f'text-anchor="end">{_share(value)}</text>'
        )
    for i in range(count):
        x0 = frame.left + slot * i + slot * 0.1
        tip = f"{labels[i]}: reference {_share(ref[i])}, latest {_share(cur[i])}"
        rects = "".join(
            f'<rect x="{_num(x)}" y="{_num(frame.y(value))}" width="{_num(bar)}" '
            f'height="{_num(base - frame.y(value))}" fill="{color}"/>'
            for value, x, color in ((ref[i], x0, REF_GREY), (cur[i], x0 + bar, BLUE))
        )
        parts.append(f"<g><title>{_e(tip)}</title>{rects}</g>")
    # Label every bar that fits (about 64 px of text each), centered under its pair.
    step = max(math.ceil(count * 64 / w), 1)
    for i in range(0, count, step):
        x = frame.left + slot * (i + 0.5)
        anchor = "start" if x - 32 < frame.left - 10 else "middle"
        label = labels[i] if len(labels[i]) <= 10 else labels[i][:9] + "\u2026"
        parts.append(
            f'<text x="{_num(x if anchor == "middle" else frame.left)}" y="{_num(base + 15)}" '
            f'text-anchor="{anchor}">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Sections.


def _thresholds(summary: Mapping[str, Any]) -> dict[str, float]:
    limits = {k: float(v) for k, v in dataclasses.asdict(Thresholds()).items()}
    for key, value in _map(summary.get("thresholds")).items():
        number = _float(value)
        if number is not None:
            limits[str(key)] = number
    return limits


def _columns(window: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("column")): c for c in _list(window.get("columns")) if "column" in c}


def _header(summary: Mapping[str, Any], drift: list[Mapping[str, Any]]) -> str:
    model = summary.get("model", "")
    version = summary.get("version")
    reference = _map(summary.get("reference"))
    facts = []
    if version is not None:
        facts.append(f"version {_e(version)}")
    if summary.get("uri"):
        facts.append(f"<code>{_e(summary['uri'])}</code>")
    if summary.get("window"):
        facts.append(f"window {_e(summary['window'])}")
    described = reference.get("description")
    rows = _int(reference.get("rows"))
    if described or rows is not None:
        text = str(described or "reference")
        if rows is not None and not described:
            text += f" ({rows:,} rows)"
        facts.append(f"reference: {_e(text)}")
    facts.append(f"generated {_e(_stamp(summary.get('generated_at')))}")
    windows = max(
        len(drift),
        len(_list(summary.get("performance"))),
        len(_list(summary.get("quality"))),
        len(_list(summary.get("latency"))),
    )
    line = [_plural(windows, "window")]
    if drift:
        latest = drift[-1]
        columns = _columns(latest)
        flagged = [name for name, c in columns.items() if c.get("drifted")]
        share = _float(latest.get("share_drifted"))
        line.append(f"latest window: {_share(share)} of features drifted")
        line.append(f"{len(flagged)} of {_plural(len(columns), 'feature')} drifted")
        if flagged:
            shown = ", ".join(flagged[:5]) + (
                f" and {len(flagged) - 5} more" if flagged[5:] else ""
            )
            line[-1] += f" ({shown})"
    else:
        line.append("no drift data yet")
    alerts = _list(summary.get("alerts"))
    firing = sum(1 for a in alerts if a.get("state") == "firing")
    line.append(f"{_plural(firing, 'open alert')}")
    return (
        f"<h1>Monitoring report: {_e(model)}</h1>"
        f"<div class='muted'>{' &middot; '.join(facts)}</div>"
        f"<p class='summary'>{_e('; '.join(line))}.</p>"
    )


def _feature_order(drift: list[Mapping[str, Any]]) -> list[str]:
    """Every column seen, drifted in the latest window first, then by latest PSI descending."""
    names: dict[str, None] = {}
    for window in drift:
        names.update(dict.fromkeys(_columns(window)))
    latest = _columns(drift[-1]) if drift else {}

    def key(name: str) -> tuple[int, float, str]:
        column = latest.get(name, {})
        psi = _float(column.get("psi"))
        return (0 if column.get("drifted") else 1, -(psi if psi is not None else -1.0), name)

    return sorted(names, key=key)


def _feature_card(
    name: str,
    drift: list[Mapping[str, Any]],
    labels: list[str],
    limits: Mapping[str, float],
    histogram: Mapping[str, Any],
) -> str:
    per_window = [_columns(w).get(name, {}) for w in drift]
    latest = per_window[-1]
    kind = str(latest.get("kind") or next((c.get("kind") for c in per_window if c), "") or "")
    psi = [_float(c.get("psi")) for c in per_window]
    marks = [i for i, c in enumerate(per_window) if c.get("drifted")]
    series = [_Series("PSI", BLUE, psi, marks)]
    thresholds = [(limits["psi"], BLUE)]
    legend = [("PSI", BLUE)]
    second = "wasserstein" if kind == "numeric" else "js" if kind == "categorical" else None
    if second:
        values = [_float(c.get(second)) for c in per_window]
        if any(v is not None for v in values):
            label = "Wasserstein / std" if second == "wasserstein" else "Jensen-Shannon"
            series.append(_Series(label, ORANGE, values))
            thresholds.append((limits.get(second, 0.1), ORANGE))
            legend.append((label, ORANGE))
    drifted_now = bool(latest.get("drifted"))
    badge = (
        "<span class='badge bad'>drifted</span>"
        if drifted_now
        else "<span class='badge ok'>stable</span>"
        if latest
        else "<span class='badge'>not in latest window</span>"
    )
    parts = [
        f"<div class='card'><h3>{_e(name)}{badge}<span class='badge'>{_e(kind or '?')}</span>"
        f"</h3><div class='muted small'>latest PSI {_e(format_number(psi[-1]))}; drifted in "
        f"{len(marks)} of {_plural(len(drift), 'window')}</div>",
        _series_chart(
            labels,
            series,
            title=f"{name}: drift per window",
            size=(440, 150),
            thresholds=thresholds,
        ),
        _legend(legend + ([("drifted window", RED)] if marks else [])),
    ]
    ref, cur = histogram.get("reference"), histogram.get("current")
    bins = histogram.get("labels")
    if isinstance(bins, list) and isinstance(ref, list) and isinstance(cur, list) and bins:
        parts.append(
            _bars_chart(
                [str(b) for b in bins],
                [_float(v) for v in ref],
                [_float(v) for v in cur],
                title=f"{name}: reference vs latest window",
            )
        )
        parts.append(_legend([("reference", REF_GREY), ("latest window", BLUE)]))
    for key, word in (("new_categories", "new"), ("missing_categories", "missing")):
        values = latest.get(key)
        if isinstance(values, list) and values:
            shown = ", ".join(_e(v) for v in values[:MAX_CATEGORIES])
            more = f" and {len(values) - MAX_CATEGORIES} more" if values[MAX_CATEGORIES:] else ""
            parts.append(f"<div class='small'>{word} categories: {shown}{_e(more)}</div>")
    parts.append("</div>")
    return "".join(parts)


def _drift_table(
    names: list[str], drift: list[Mapping[str, Any]], limits: Mapping[str, float]
) -> str:
    latest = _columns(drift[-1])
    counts = {name: 0 for name in names}
    for window in drift:
        for name, column in _columns(window).items():
            if column.get("drifted"):
                counts[name] = counts.get(name, 0) + 1
    rows = []
    for name in names:
        c = latest.get(name, {})
        stats = []
        for key in ("psi", "ks", "wasserstein", "js", "cramers_v"):
            value = _float(c.get(key))
            limit = limits.get(key)
            flag = "bad" if value is not None and limit is not None and value >= limit else ""
            stats.append(_cell(_e(format_number(value)), numeric=True, css=flag))
        ref, cur = _float(c.get("null_share_reference")), _float(c.get("null_share_current"))
        nulls = f"{_share(ref)} &rarr; {_share(cur)}" if ref is not None or cur is not None else "-"
        new, missing = c.get("new_categories"), c.get("missing_categories")
        rows.append(
            f"<tr{' class=warn' if c.get('drifted') else ''}>"
            + _cell(_e(name))
            + _cell(_e(c.get("kind") or "-"))
            + _cell("yes" if c.get("drifted") else "no" if c else "-")
            + "".join(stats)
            + _cell(nulls, numeric=True)
            + _cell(str(len(new)) if isinstance(new, list) else "-", numeric=True)
            + _cell(str(len(missing)) if isinstance(missing, list) else "-", numeric=True)
            + _cell(f"{counts.get(name, 0)}/{len(drift)}", numeric=True)
            + "</tr>"
        )
    head = (
        "feature",
        "kind",
        "drifted",
        "PSI",
        "KS",
        "Wasserstein",
        "JS",
        "Cramér's V",
        "nulls ref → now",
        "new cats",
        "missing cats",
        "windows drifted",
    )
    return _table(head, rows)


def _drift_section(summary: Mapping[str, Any], limits: Mapping[str, float]) -> str:
    drift = _list(summary.get("drift"))
    parts = ["<h2>Drift</h2>"]
    if not drift:
        return parts[0] + _no_data("Drift")
    labels = _window_labels(drift)
    shares = [_float(w.get("share_drifted")) for w in drift]
    marks = [i for i, w in enumerate(drift) if w.get("drifted")]
    parts.append(
        _series_chart(
            labels,
            [_Series("share of features drifted", BLUE, shares, marks)],
            title="Share of features drifted per window",
            thresholds=[(limits["share_drifted"], RED)],
            ceiling=1.0,
            fmt=_share,
        )
    )
    parts.append(
        _legend(
            [
                ("share of features drifted", BLUE),
                (f"dataset threshold {_share(limits['share_drifted'])}", RED),
            ]
        )
    )
    names = _feature_order(drift)
    histograms = _map(summary.get("histograms"))
    cards = [
        _feature_card(name, drift, labels, limits, _map(histograms.get(name)))
        for name in names[:MAX_FEATURE_CHARTS]
    ]
    parts.append(
        "<h3>Features</h3><p class='muted small'>Drifted in the latest window first, then by "
        f"latest PSI. Dashed lines: thresholds (PSI {format_number(limits['psi'])}, "
        f"Wasserstein/std {format_number(limits['wasserstein'])}, "
        f"Jensen-Shannon {format_number(limits['js'])}).</p>"
    )
    parts.append(f"<div class='grid'>{''.join(cards)}</div>")
    if names[MAX_FEATURE_CHARTS:]:
        parts.append(
            _note(
                f"Charts for the first {MAX_FEATURE_CHARTS} features only; "
                f"the table lists all {len(names)}."
            )
        )
    parts.append("<h3>Latest window, all features</h3>")
    parts.append(_drift_table(names, drift, limits))
    return "".join(parts)


def _metric_names(windows: list[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for window in windows:
        for key, value in _map(window.get("metrics")).items():
            if _float(value) is not None:
                seen[str(key)] = None
    known = [m for m in METRICS if m in seen]
    return known + sorted(m for m in seen if m not in METRICS)


def _worse(metric: str, value: float | None, overall: float | None) -> bool:
    """Whether a slice's metric is more than 10% worse than the whole window's."""
    if value is None or overall is None:
        return False
    margin = 0.1 * abs(overall) or 1e-9
    if metric in HIGHER_IS_BETTER:
        return value < overall - margin
    return value > overall + margin


def _slice_tables(window: Mapping[str, Any], metrics: list[str]) -> str:
    slices = _map(window.get("slices"))
    overall = _map(window.get("metrics"))
    parts = []
    for column, groups in slices.items():
        groups = {str(k): _map(v) for k, v in _map(groups).items()}
        if not groups:
            continue
        names = [m for m in metrics if any(m in g for g in groups.values())]
        order = sorted(groups, key=lambda k: -(_float(groups[k].get("rows")) or 0.0))
        rows = []
        for value in order[:MAX_SLICE_VALUES]:
            group = groups[value]
            count = _int(group.get("rows"))
            cells = [
                _cell(_e(value)),
                _cell(f"{count:,}" if count is not None else "-", numeric=True),
            ]
            for metric in names:
                number = _float(group.get(metric))
                flag = "bad" if _worse(metric, number, _float(overall.get(metric))) else ""
                cells.append(_cell(_e(format_number(number)), numeric=True, css=flag))
            rows.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(f"<h4>by {_e(column)}</h4>" + _table([str(column), "rows", *names], rows))
        if order[MAX_SLICE_VALUES:]:
            parts.append(_note(f"The {MAX_SLICE_VALUES} largest of {len(order)} slices by rows."))
    return "".join(parts)


def _performance_section(summary: Mapping[str, Any]) -> str:
    windows = _list(summary.get("performance"))
    head = "<h2>Performance</h2>"
    metrics = _metric_names(windows)
    if not windows or not metrics:
        return head + _no_data("Performance (needs labelled predictions)")
    labels = _window_labels(windows)
    parts = [head]
    rows = [_float(w.get("rows")) for w in windows]
    labelled = [_float(w.get("labelled")) for w in windows]
    total = sum(v or 0 for v in labelled)
    parts.append(
        f"<p class='muted small'>{_plural(int(total), 'labelled row')} over "
        f"{_plural(len(windows), 'window')}; a dot is a window with a single value.</p>"
    )
    charts = []
    for metric in metrics:
        values = [_float(_map(w.get("metrics")).get(metric)) for w in windows]
        ceiling = 1.0 if metric in {"auc", "accuracy"} else None
        charts.append(
            f"<div class='card'><h3>{_e(metric)}</h3>"
            + _series_chart(
                labels,
                [_Series(metric, PALETTE[len(charts) % len(PALETTE)], values)],
                title=f"{metric} per window",
                size=(440, 150),
                floor=0.0 if metric not in {"auc", "accuracy"} else None,
                ceiling=ceiling,
            )
            + "</div>"
        )
    charts.append(
        "<div class='card'><h3>rows and labelled rows</h3>"
        + _series_chart(
            labels,
            [_Series("rows", GREY, rows), _Series("labelled", GREEN, labelled)],
            title="rows and labelled rows per window",
            size=(440, 150),
        )
        + _legend([("rows", GREY), ("labelled", GREEN)])
        + "</div>"
    )
    parts.append(f"<div class='grid'>{''.join(charts)}</div>")
    latest = windows[-1]
    window_metrics = _map(latest.get("metrics"))
    cells = "".join(
        _cell(_e(format_number(_float(window_metrics.get(m)))), numeric=True) for m in metrics
    )
    count = _int(latest.get("labelled"))
    parts.append(
        "<h3>Latest window</h3>"
        + _table(
            ["labelled", *metrics],
            [f"<tr>{_cell(f'{count:,}' if count is not None else '-', numeric=True)}{cells}</tr>"],
        )
    )
    slices = _slice_tables(latest, metrics)
    parts.append(slices or _note("Slices: no data yet."))
    return "".join(parts)


def _quality_section(summary: Mapping[str, Any]) -> str:
    windows = _list(summary.get("quality"))
    head = "<h2>Data quality on traffic</h2>"
    if not windows:
        return head + _no_data("Data quality")
    drift = _list(summary.get("drift"))
    reference_nulls = {
        name: _float(c.get("null_share_reference"))
        for name, c in (_columns(drift[-1]).items() if drift else ())
    }
    latest = windows[-1]
    columns = {str(k): _map(v) for k, v in _map(latest.get("columns")).items()}
    parts = [head]
    facts = [_stamp(latest["start"])] if _time(latest.get("start")) else []
    rows_count = _int(latest.get("rows"))
    if rows_count is not None:
        facts.append(f"{rows_count:,} rows")
    where = f" ({', '.join(facts)})" if facts else ""
    parts.append(
        f"<p class='muted small'>Latest window{_e(where)}. Highlighted: nulls "
        "2 points above the reference, any out-of-range values or unseen categories.</p>"
    )
    if columns:
        rows = []
        for name in sorted(columns):
            column = columns[name]
            null = _float(column.get("null_share"))
            ref = reference_nulls.get(name)
            out = _float(column.get("out_of_range_share"))
            unseen = {str(k): _int(v) or 0 for k, v in _map(column.get("unseen")).items()}
            top = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            unseen_text = ", ".join(f"{_e(k)} ({v:,})" for k, v in top) or "-"
            if len(unseen) > 5:
                unseen_text += f" and {len(unseen) - 5} more"
            null_bad = null is not None and null > (ref or 0.0) + 0.02
            rows.append(
                "<tr>"
                + _cell(_e(name))
                + _cell(_share(null), numeric=True, css="warn" if null_bad else "")
                + _cell(_share(ref), numeric=True)
                + _cell(_share(out), numeric=True, css="warn" if out else "")
                + _cell(unseen_text, css="warn" if unseen else "")
                + "</tr>"
            )
        head_cells = ["column", "null share", "reference nulls", "out of range", "unseen (top 5)"]
        parts.append(_table(head_cells, rows))
    else:
        parts.append(_note("Latest window columns: no data yet."))
    null_series: dict[str, list[float | None]] = {}
    for index, window in enumerate(windows):
        for name, column in _map(window.get("columns")).items():
            value = _float(_map(column).get("null_share"))
            if value is not None:
                null_series.setdefault(str(name), [None] * len(windows))[index] = value
    with_nulls = {k: v for k, v in null_series.items() if any(x for x in v)}
    if with_nulls:
        ranked = sorted(with_nulls, key=lambda k: (-max(x or 0 for x in with_nulls[k]), k))
        shown = ranked[:MAX_LINES]
        series = [
            _Series(name, PALETTE[i % len(PALETTE)], with_nulls[name])
            for i, name in enumerate(shown)
        ]
        parts.append("<h3>Null share over time</h3>")
        parts.append(
            _series_chart(
                _window_labels(windows), series, title="Null share per window", fmt=_share
            )
        )
        parts.append(_legend([(s.label, s.color) for s in series]))
        if ranked[MAX_LINES:]:
            parts.append(
                _note(
                    f"The {MAX_LINES} columns with the highest null share of "
                    f"{len(ranked)} with any nulls."
                )
            )
    else:
        parts.append(_note("No nulls in any window."))
    return "".join(parts)


def _latency_section(summary: Mapping[str, Any]) -> str:
    windows = _list(summary.get("latency"))
    head = "<h2>Latency</h2>"
    keys = (("p50_ms", "p50", GREEN), ("p95_ms", "p95", AMBER), ("p99_ms", "p99", RED))
    series = [
        _Series(label, color, [_float(w.get(key)) for w in windows]) for key, label, color in keys
    ]
    series = [s for s in series if any(v is not None for v in s.values)]
    if not series:
        return head + _no_data("Latency")
    latest = windows[-1]
    facts = ", ".join(
        f"{label} {format_number(_float(latest.get(key)))} ms" for key, label, _ in keys
    )
    return (
        head
        + f"<p class='muted small'>Latest window: {_e(facts)}.</p>"
        + _series_chart(
            _window_labels(windows),
            series,
            title="Latency percentiles per window (ms)",
            fmt=lambda v: f"{format_number(v)} ms",
        )
        + _legend([(s.label, s.color) for s in series])
    )


def _timeline(summary: Mapping[str, Any], alerts: list[Mapping[str, Any]]) -> str:
    """Lanes of alert bars over time: one lane per rule, a bar per alert, colored by severity."""
    windows = [
        w for key in ("drift", "performance", "quality", "latency") for w in _list(summary.get(key))
    ]
    ends = [t for w in windows for t in (_time(w.get("end")), _time(w.get("start"))) if t]
    now = _time(summary.get("generated_at")) or max(ends, default=None)
    bars = []
    for alert in alerts:
        fired = _time(alert.get("fired_at"))
        if fired is None:
            continue
        resolved = _time(alert.get("resolved_at"))
        is_open = resolved is None and alert.get("state") != "resolved"
        bars.append((alert, fired, resolved, is_open))
    if not bars:
        return _note("Alert timeline: no dated alerts yet.")
    known = [t for _, f, r, _ in bars for t in (f, r) if t] + ends + ([now] if now else [])
    start, stop = min(known), max(known)
    if stop <= start:
        stop = start + timedelta(hours=1)
    rules = list(dict.fromkeys(str(a.get("rule") or "?") for a, *_ in bars))
    lanes = rules[:MAX_LANES]
    width, lane, left, top = 900, 20, 150, 8
    height = top + lane * len(lanes) + 26
    plot_w = width - left - 12
    span = (stop - start).total_seconds()

    def x(t: datetime) -> float:
        return left + plot_w * (t - start).total_seconds() / span

    parts = [_svg_open(width, height, "Alert timeline")]
    base = top + lane * len(lanes)
    grid = [f"M{left},{base}H{left + plot_w}"]
    fmt = _date_format([start, stop])
    for i in range(6):
        t = start + (stop - start) * i / 5
        px = _num(x(t))
        grid.append(f"M{px},{top}V{base + 4}")
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        parts.append(f'<text x="{px}" y="{base + 16}" text-anchor="{anchor}">{_e(fmt(t))}</text>')
    parts.append(f'<path d="{"".join(grid)}" stroke="#eef1f5" fill="none"/>')
    for i, rule in enumerate(lanes):
        label = rule if len(rule) <= 22 else rule[:21] + "\u2026"
        parts.append(
            f'<text x="{left - 6}" y="{top + lane * i + 14}" text-anchor="end">{_e(label)}'
            f"<title>{_e(rule)}</title></text>"
        )
    ticks = []
    for alert, fired, resolved, is_open in bars:
        rule = str(alert.get("rule") or "?")
        if rule not in lanes:
            continue
        row = lanes.index(rule)
        end = resolved or now or stop
        end = max(end, fired)
        x0, x1 = x(fired), x(end)
        severity = str(alert.get("severity") or "")
        color = SEVERITY_COLORS.get(severity.lower(), GREY)
        state = "open" if is_open else "resolved"
        tip = (
            f"{rule} #{alert.get('id', '?')} ({severity or 'no severity'}, {state}): "
            f"{_stamp(alert.get('fired_at'))} to "
            f"{'now' if is_open else _stamp(alert.get('resolved_at'))}. "
            f"{alert.get('message') or ''}"
        )
        parts.append(
            f'<rect x="{_num(x0)}" y="{top + lane * row + 4}" width="{_num(max(x1 - x0, 2))}" '
            f'height="12" rx="2" fill="{color}" fill-opacity="{"1" if is_open else ".55"}">'
            f"<title>{_e(tip.strip())}</title></rect>"
        )
        for event in _list(alert.get("events")):
            at = _time(event.get("at"))
            if event.get("kind") == "action" and at is not None:
                ticks.append(f"M{_num(x(at))},{top + lane * row + 2}v16")
    if ticks:
        parts.append(f'<path d="{"".join(ticks)}" stroke="#1d2330" stroke-width="1.5"/>')
    if now is not None:
        px = _num(x(now))
        parts.append(
            f'<path d="M{px},{top}V{base}" stroke="#667085" stroke-dasharray="3 3">'
            f"<title>generated {_e(_stamp(summary.get('generated_at')))}</title></path>"
        )
    parts.append("</svg>")
    legend = _legend(
        [("critical", RED), ("warning", AMBER), ("info", BLUE), ("action taken", "#1d2330")]
    )
    more = ""
    if rules[MAX_LANES:]:
        more = _note(f"The first {MAX_LANES} of {len(rules)} rules; the table lists every alert.")
    return "".join(parts) + legend + _note("Faded bars are resolved alerts.") + more


def _event_list(events: list[Mapping[str, Any]]) -> str:
    if not events:
        return "-"
    items = []
    for event in events[:MAX_EVENTS]:
        text = f"{_stamp(event.get('at'))} {event.get('kind') or 'event'}"
        if event.get("action"):
            text += f": {event['action']}"
        if event.get("status"):
            text += f" ({event['status']})"
        item = _e(text)
        if event.get("pipeline_run_id"):
            item += f", pipeline run <code>{_e(event['pipeline_run_id'])}</code>"
        items.append(f"<li>{item}</li>")
    if events[MAX_EVENTS:]:
        items.append(f"<li>and {len(events) - MAX_EVENTS} more</li>")
    return f"<ul class='ev'>{''.join(items)}</ul>"


def _alerts_section(summary: Mapping[str, Any]) -> str:
    alerts = _list(summary.get("alerts"))
    head = "<h2>Alerts</h2>"
    if not alerts:
        return head + _no_data("Alerts (none have fired)")
    parts = [head, _timeline(summary, alerts)]

    def order(alert: Mapping[str, Any]) -> tuple[int, float]:
        fired = _time(alert.get("fired_at"))
        return (0 if alert.get("state") == "firing" else 1, -(fired.timestamp() if fired else 0))

    rows = []
    for alert in sorted(alerts, key=order):
        firing = alert.get("state") == "firing"
        severity = str(alert.get("severity") or "-")
        rows.append(
            f"<tr{' class=warn' if firing else ''}>"
            + _cell(_e(alert.get("id", "-")), numeric=True)
            + _cell(_e(alert.get("rule") or "-"))
            + _cell(_e(severity), css="bad" if severity.lower() in {"critical", "error"} else "")
            + _cell(_e(alert.get("state") or "-"))
            + _cell(_e(_stamp(alert.get("fired_at"))))
            + _cell(_e(_stamp(alert.get("resolved_at"))))
            + _cell(_e(alert.get("message") or ""))
            + _cell(_event_list(_list(alert.get("events"))), css="small")
            + "</tr>"
        )
    head_cells = ["id", "rule", "severity", "state", "fired", "resolved", "message", "events"]
    parts.append(_table(head_cells, rows))
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Public API.


def render_report(summary: Mapping[str, Any]) -> str:
    """Return a self-contained HTML monitoring page (inline SVG, no scripts) for ``summary``.

    Every key but ``model`` may be missing or empty; its section then notes "no data yet".
    Every string from the summary is HTML-escaped.

    Example:
        >>> summary = {
        ...     "model": "delay",
        ...     "drift": [{"start": "2026-11-26T00:00:00+00:00", "share_drifted": 0.5,
        ...                "columns": [{"column": "temp", "kind": "numeric", "psi": 0.3,
        ...                             "drifted": True}]}],
        ... }
        >>> page = render_report(summary)
        >>> "<svg" in page and "temp" in page and "<script" not in page
        True
    """
    limits = _thresholds(summary)
    drift = _list(summary.get("drift"))
    model = summary.get("model", "")
    version = summary.get("version")
    title = f"Monitoring: {model}" + (f" v{version}" if version is not None else "")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}{_EXTRA_CSS}</style></head><body>",
        _header(summary, drift),
        _drift_section(summary, limits),
        _performance_section(summary),
        _quality_section(summary),
        _latency_section(summary),
        _alerts_section(summary),
        "</body></html>",
    ]
    return "".join(parts)


def write_report(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Write the HTML report for ``summary`` to ``path`` atomically and return the path.

    The page goes to a temporary file in the same folder, which then replaces ``path``: a
    reader sees the old report or the new one, never half of one.

    Example:
        >>> import tempfile, pathlib
        >>> out = write_report({"model": "m"}, pathlib.Path(tempfile.mkdtemp()) / "r.html")
        >>> out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        True
    """
    from plinth._core.files import atomic_write_bytes

    target = Path(path)
    atomic_write_bytes(target, render_report(summary).encode("utf-8"))
    return target
