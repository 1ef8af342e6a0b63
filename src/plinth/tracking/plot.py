"""Charts of metric series: one self-contained HTML page with inline SVG, or a PNG.

The HTML page has no scripts and fetches nothing: one line chart per metric, one line per run
(NaN and infinite values break the line), a shared legend and a table of each run's last,
lowest and highest value. PNG output uses matplotlib, which is an optional extra.
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plinth.errors import ConfigError, PlinthError
from plinth.tracking.history import MetricHistory

__all__ = [
    "PALETTE",
    "format_number",
    "line_chart",
    "nice_ticks",
    "render_html",
    "render_png",
    "write_plot",
]

PALETTE = (
    "#2f6fde",
    "#d64545",
    "#3a9a5b",
    "#e0a400",
    "#8e5bd6",
    "#1aa3b5",
    "#e06f1f",
    "#667085",
    "#c2408f",
    "#6b8e23",
)
WIDTH, HEIGHT = 900, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 34
TICKS = 5

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:960px;color:#1d2330;padding:0 16px}h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:26px 0 6px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
.muted{color:#667085}table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef1f5}th{background:#f6f8fb}
td.n{text-align:right;font-variant-numeric:tabular-nums}svg text{font-size:11px;fill:#475467}
.legend span.sw{display:inline-block;width:12px;height:4px;margin:0 6px 3px 14px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    """Compact number for SVG coordinates."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def format_number(value: float | None) -> str:
    """Format a metric value for a table or an axis: compact, NaN and infinities spelled out.

    Example:
        >>> [format_number(v) for v in (0.123456, 12345.6, float("nan"), None)]
        ['0.1235', '12,346', 'NaN', '-']
    """
    if value is None or math.isnan(value):
        return "NaN" if value is not None else "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    magnitude = abs(value)
    if magnitude >= 1e6 or 0 < magnitude < 1e-3:
        return f"{value:.3g}"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def nice_ticks(low: float, high: float, *, integers: bool = False) -> list[float]:
    """About ``TICKS`` round values (1, 2, 2.5 or 5 times a power of ten apart) in a range.

    Example:
        >>> nice_ticks(0.47, 1.1)
        [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]
        >>> nice_ticks(0, 9999, integers=True)
        [0.0, 2000.0, 4000.0, 6000.0, 8000.0]
    """
    span = high - low
    if not math.isfinite(span) or span <= 0:
        return [low]
    raw = span / TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 2.5, 5, 10)), key=lambda c: abs(math.log(c / raw)))
    if integers:
        step = max(round(step), 1)
    ticks = []
    index = math.ceil(low / step - 1e-9)
    while index * step <= high + step * 1e-9:
        ticks.append(float(round(index * step, 12)))
        index += 1
    return ticks


def _range(values: Sequence[float], pad: float) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if low == high:
        spread = abs(low) * 0.05 or 1.0
        return low - spread, high + spread
    margin = (high - low) * pad
    return low - margin, high + margin


def _path(
    history: MetricHistory,
    x: tuple[float, float],
    y: tuple[float, float],
    size: tuple[float, float],
) -> tuple[str, list[tuple[float, float]]]:
    """SVG path data of a series (a new sub-path after each NaN or infinity), and lone points."""
    (x0, x1), (y0, y1), (w, h) = x, y, size
    parts: list[str] = []
    run: list[tuple[float, float]] = []
    lone: list[tuple[float, float]] = []

    def flush() -> None:
        if len(run) == 1:
            lone.append(run[0])
        elif run:
            head, *rest = run
            parts.append(
                f"M{_num(head[0])},{_num(head[1])}L"
                + " ".join(f"{_num(px)},{_num(py)}" for px, py in rest)
            )
        run.clear()

    for step, value in zip(history.steps, history.values, strict=True):
        if not math.isfinite(value):
            flush()
            continue
        px = LEFT + w * (step - x0) / (x1 - x0)
        py = TOP + h - h * (value - y0) / (y1 - y0)
        run.append((px, py))
    flush()
    return "".join(parts), lone


def line_chart(
    histories: Sequence[MetricHistory],
    colors: Sequence[str],
    labels: Sequence[str],
    *,
    title: str = "",
) -> str:
    """Return an SVG line chart of one metric over steps, one line per history.

    Example:
        >>> h = MetricHistory("r1", "loss", [0, 1, 2], [1.0, 0.5, 0.25], [], 3)
        >>> svg = line_chart([h], ["#000"], ["r1"])
        >>> svg.startswith("<svg") and "<path" in svg
        True
    """
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    steps = [s for hist in histories for s in hist.steps]
    x0, x1 = (min(steps), max(steps)) if steps else (0, 1)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = _range([v for hist in histories for v in hist.values], 0.05)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{_e(title)}</title>',
        f'<line x1="{LEFT}" y1="{TOP + h}" x2="{LEFT + w}" y2="{TOP + h}" stroke="#98a2b3"/>',
    ]
    for value in nice_ticks(y0, y1):
        py = TOP + h - h * (value - y0) / (y1 - y0)
        parts.append(
            f'<line x1="{LEFT}" y1="{_num(py)}" x2="{LEFT + w}" y2="{_num(py)}" stroke="#eef1f5"/>'
            f'<text x="{LEFT - 6}" y="{_num(py + 4)}" text-anchor="end">'
            f"{_e(format_number(value))}</text>"
        )
    for value in nice_ticks(x0, x1, integers=True):
        px = LEFT + w * (value - x0) / (x1 - x0)
        parts.append(
            f'<line x1="{_num(px)}" y1="{TOP + h}" x2="{_num(px)}" y2="{TOP + h + 4}" '
            f'stroke="#98a2b3"/><text x="{_num(px)}" y="{TOP + h + 16}" text-anchor="middle">'
            f"{_e(f'{value:,.0f}')}</text>"
        )
    parts.append(f'<text x="{LEFT + w / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">step</text>')
    for hist, color, label in zip(histories, colors, labels, strict=True):
        data, lone = _path(hist, (x0, x1), (y0, y1), (w, h))
        last = format_number(hist.values[-1]) if hist.values else "-"
        tip = f"<title>{_e(label)}: last {_e(last)}</title>"
        if data:
            parts.append(
                f'<path d="{data}" fill="none" stroke="{color}" stroke-width="1.6" '
                f'stroke-linejoin="round">{tip}</path>'
            )
        for px, py in lone:
            parts.append(
                f'<circle cx="{_num(px)}" cy="{_num(py)}" r="2.5" fill="{color}">{tip}</circle>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _group(histories: Sequence[MetricHistory]) -> dict[str, list[MetricHistory]]:
    groups: dict[str, list[MetricHistory]] = {}
    for hist in histories:
        groups.setdefault(hist.key, []).append(hist)
    return groups


def _colors(histories: Sequence[MetricHistory]) -> dict[str, str]:
    order = list(dict.fromkeys(h.run_id for h in histories))
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(order)}


def _stats_table(group: Sequence[MetricHistory], labels: Mapping[str, str]) -> str:
    rows = []
    for hist in group:
        finite = [v for v in hist.values if math.isfinite(v)]
        shown = f"{len(hist.steps):,}" + (f" of {hist.total:,}" if hist.downsampled else "")
        cells = [
            _e(labels.get(hist.run_id, hist.run_id)),
            _e(shown),
            _e(f"{hist.steps[-1]:,}" if hist.steps else "-"),
            _e(format_number(hist.values[-1] if hist.values else None)),
            _e(format_number(min(finite) if finite else None)),
            _e(format_number(max(finite) if finite else None)),
        ]
        rows.append(
            "<tr><td>" + cells[0] + "</td>" + "".join(f"<td class='n'>{c}</td>" for c in cells[1:])
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("run", "points", "last step", "last", "lowest", "highest")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(
    histories: Sequence[MetricHistory],
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Run metrics",
) -> str:
    """Return one self-contained HTML page charting ``histories``, one chart per metric key.

    ``labels`` maps run ids to the names shown in the legend (default: the ids).

    Example:
        >>> h = MetricHistory("r1", "loss", [0, 1], [1.0, 0.5], [], 2)
        >>> page = render_html([h])
        >>> page.startswith("<!DOCTYPE html>") and "<script" not in page
        True
    """
    labels = dict(labels or {})
    colors = _colors(histories)
    groups = _group(histories)
    legend = "".join(
        f"<span class='sw' style='background:{color}'></span>{_e(labels.get(run_id, run_id))}"
        for run_id, color in colors.items()
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<div class='muted'>{len(colors)} run{'s' if len(colors) != 1 else ''}, "
        f"{len(groups)} metric{'s' if len(groups) != 1 else ''}; generated "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}.</div>",
        f"<p class='legend'>{legend}</p>",
    ]
    for key, group in groups.items():
        names = [labels.get(h.run_id, h.run_id) for h in group]
        chart = line_chart(group, [colors[h.run_id] for h in group], names, title=key)
        parts += [f"<h2>{_e(key)}</h2>", chart, _stats_table(group, labels)]
    parts.append("</body></html>")
    return "".join(parts)


def render_png(
    histories: Sequence[MetricHistory],
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Run metrics",
) -> bytes:
    """Return a PNG charting ``histories``, one panel per metric key (needs matplotlib).

    Example:
        >>> # open("runs.png", "wb").write(render_png(histories))
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlinthError(
            "Writing a PNG chart needs matplotlib, which is not installed.",
            hint="Run: pip install 'plinth-ai[plot]', or write HTML (a .html file) instead.",
        ) from None
    labels = dict(labels or {})
    colors = _colors(histories)
    groups = _group(histories) or {"(no metrics)": []}
    figure = Figure(figsize=(9, 2.8 * len(groups) + 0.6), layout="constrained")
    figure.suptitle(title)
    axes = figure.subplots(len(groups), 1, squeeze=False)[:, 0]
    for ax, (key, group) in zip(axes, groups.items(), strict=True):
        for hist in group:
            # NaN breaks the line; infinities would squash the axis, so they break it too.
            values = [v if math.isfinite(v) else math.nan for v in hist.values]
            ax.plot(
                hist.steps,
                values,
                color=colors[hist.run_id],
                linewidth=1.4,
                marker="o" if len(hist.steps) == 1 else None,
                label=labels.get(hist.run_id, hist.run_id),
            )
        ax.set_title(key, loc="left", fontsize=11)
        ax.set_xlabel("step")
        ax.grid(True, color="#eef1f5")
    if histories:
        axes[0].legend(fontsize=8, loc="best")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def write_plot(
    histories: Sequence[MetricHistory],
    path: str | os.PathLike[str],
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Run metrics",
) -> Path:
    """Write the chart of ``histories`` to ``path`` atomically: PNG for ``.png``, else HTML.

    Example:
        >>> # write_plot([ws.runs.history(run_id, "loss")], "loss.html")
    """
    from plinth._core.files import atomic_write_bytes

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".png":
        data = render_png(histories, labels=labels, title=title)
    elif suffix in (".html", ".htm"):
        data = render_html(histories, labels=labels, title=title).encode("utf-8")
    else:
        raise ConfigError(
            f"Cannot tell the chart format from '{target.name}'.",
            hint="Name the output file with .html (a page with inline SVG) or .png.",
        )
    atomic_write_bytes(target, data)
    return target
