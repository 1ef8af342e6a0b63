"""A self-contained HTML quality report of one table version, with inline SVG charts.

One page, no scripts and nothing fetched from the network: a volume chart over versions, a
PSI bar chart per column, reference-versus-current histograms of the most shifted columns,
and tables for freshness, schema changes, events and lineage. Only aggregates are shown, and
the values of high-cardinality string columns (ids, free text) are never written out; columns
withheld as personal data are only named.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.quality.drift import MODERATE_PSI, OTHER, SIGNIFICANT_PSI

if TYPE_CHECKING:
    from plinth.quality.drift import ColumnShift
    from plinth.quality.observability import QualitySummary

#: How many of the most shifted columns get a histogram.
HISTOGRAM_COLUMNS = 12
#: Most recent versions drawn in the volume chart.
VOLUME_VERSIONS = 120
REF_COLOR = "#8c96a8"
CUR_COLOR = "#2f6fde"
SEVERITY_COLORS = {"none": "#3a9a5b", "moderate": "#e0a400", "significant": "#d64545"}
LABEL_CHARS = 18

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#1d2330;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#dde2ea;padding-bottom:4px}.muted{color:#667085}.cards{display:flex;gap:12px;flex-wrap:wrap;
margin:14px 0}.card{border:1px solid #dde2ea;border-radius:8px;padding:8px 14px;min-width:140px}
.card b{display:block;font-size:18px}table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef1f5;vertical-align:top}
th{background:#f6f8fb;font-weight:600}.grid{display:grid;grid-template-columns:repeat(auto-fill,
minmax(340px,1fr));gap:14px}.panel{border:1px solid #dde2ea;border-radius:8px;padding:8px}
.panel h3{font-size:14px;margin:0 0 4px}svg text{font-size:11px;fill:#475467}
.sig{color:#d64545}.mod{color:#b07f00}.ok{color:#3a9a5b}.legend span{display:inline-block;
width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    """Compact number for SVG coordinates."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 1e15 or 0 < magnitude < 1e-3:
        return f"{value:.3g}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _fmt_time(seconds: float, span: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%d %H:%M" if span < 3 * 86400 else "%Y-%m-%d")


def _label(value: Any) -> str:
    text = "(other)" if value == OTHER else str(value)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


# -- charts ----------------------------------------------------------------------------------


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    width: int = 900,
    height: int = 220,
    color: str = CUR_COLOR,
    title: str = "",
) -> str:
    """Return an SVG vertical bar chart of ``values`` with x labels (every few, if many).

    Example:
        >>> bar_chart(["v0", "v1"], [10, 20]).startswith("<svg")
        True
    """
    left, bottom, top = 56, 34, 12
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max([float(v) for v in values] + [1e-12])
    n = max(len(values), 1)
    step = plot_w / n
    bar = min(step * 0.8, 48.0)
    parts = [_svg_open(width, height, title)]
    parts.append(_axes(left, top, plot_w, plot_h, peak))
    every = max(1, n // 12)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * float(value) / peak
        x = left + i * step
        parts.append(
            f'<rect x="{_num(x + (step - bar) / 2)}" y="{_num(top + plot_h - h)}" '
            f'width="{_num(max(bar, 0.5))}" height="{_num(h)}" fill="{color}">'
            f"<title>{_e(label)}: {_e(_fmt(value))}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{_num(x + step / 2)}" y="{height - bottom + 14}" '
                f'text-anchor="middle">{_e(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def psi_chart(shifts: Sequence[ColumnShift], *, width: int = 900) -> str:
    """Return an SVG horizontal bar chart of each column's PSI, with the 0.1 and 0.25 marks.

    Example:
        >>> psi_chart([]).startswith("<svg")
        True
    """
    rows = [s for s in shifts if s.psi is not None]
    bar_h, left, top = 18, 170, 16
    height = top + bar_h * max(len(rows), 1) + 24
    plot_w = width - left - 70
    peak = max([s.psi or 0.0 for s in rows] + [SIGNIFICANT_PSI * 1.2])
    parts = [_svg_open(width, height, "Population stability index per column")]
    for mark, anchor in ((MODERATE_PSI, "end"), (SIGNIFICANT_PSI, "start")):
        x = left + plot_w * mark / peak
        parts.append(
            f'<line x1="{_num(x)}" y1="{top - 6}" x2="{_num(x)}" y2="{height - 20}" '
            f'stroke="#c3c9d4" stroke-dasharray="4 3"/>'
            f'<text x="{_num(x)}" y="{height - 6}" text-anchor="{anchor}">{mark:g}</text>'
        )
    for i, shift in enumerate(rows):
        value = shift.psi or 0.0
        y = top + i * bar_h
        w = max(plot_w * value / peak, 1.0)
        color = SEVERITY_COLORS.get(shift.severity, CUR_COLOR)
        parts.append(
            f'<text x="{left - 6}" y="{_num(y + bar_h * 0.7)}" text-anchor="end">'
            f"{_e(_label(shift.column))}</text>"
            f'<rect x="{left}" y="{_num(y + 2)}" width="{_num(w)}" height="{bar_h - 4}" '
            f'fill="{color}"><title>{_e(shift.column)}: {value:.4f}</title></rect>'
            f'<text x="{_num(left + w + 4)}" y="{_num(y + bar_h * 0.7)}">{value:.3f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def overlay_histogram(shift: ColumnShift, *, width: int = 340, height: int = 170) -> str:
    """Return an SVG of the reference and current distributions of one column, as shares.

    Numeric and temporal columns are drawn over their bin edges; string and boolean columns
    as paired bars per value. Values of high-cardinality columns are replaced by their rank.

    Example:
        >>> from plinth.quality.drift import ColumnShift
        >>> s = ColumnShift("a", "numeric", 0.0, {"edges": [0, 1, 2], "counts": [1, 1]},
        ...                 {"edges": [0, 1, 2], "counts": [1, 1]})
        >>> "<svg" in overlay_histogram(s)
        True
    """
    ref_counts = [float(c) for c in shift.reference.get("counts", [])]
    cur_counts = [float(c) for c in shift.current.get("counts", [])]
    ref_share = _shares(ref_counts)
    cur_share = _shares(cur_counts)
    left, bottom, top = 40, 30, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([*ref_share, *cur_share, 1e-12])
    n = max(len(ref_share), 1)
    step = plot_w / n
    parts = [_svg_open(width, height, f"{shift.column}: reference vs current")]
    parts.append(_axes(left, top, plot_w, plot_h, peak, percent=True))
    categorical = "labels" in shift.reference or _constant(shift)
    for i, (r, c) in enumerate(zip(ref_share, cur_share, strict=False)):
        x = left + i * step
        hr, hc = plot_h * r / peak, plot_h * c / peak
        if categorical:
            w = step * 0.4
            parts.append(_rect(x + step * 0.1, top + plot_h - hr, w, hr, REF_COLOR, 1.0))
            parts.append(_rect(x + step * 0.5, top + plot_h - hc, w, hc, CUR_COLOR, 1.0))
        else:
            parts.append(_rect(x, top + plot_h - hr, step, hr, REF_COLOR, 0.55))
            parts.append(_rect(x + step * 0.2, top + plot_h - hc, step * 0.6, hc, CUR_COLOR, 0.8))
    parts.append(_x_labels(shift, left, top + plot_h, step, n))
    parts.append("</svg>")
    return "".join(parts)


def _constant(shift: ColumnShift) -> bool:
    edges = shift.reference.get("edges") or []
    return len(edges) == 4 and edges[0] == edges[-1]


def _shares(counts: list[float]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _rect(x: float, y: float, w: float, h: float, color: str, opacity: float) -> str:
    return (
        f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0.5))}" height="{_num(h)}" '
        f'fill="{color}" fill-opacity="{opacity}"/>'
    )


def _x_labels(shift: ColumnShift, left: float, base: float, step: float, n: int) -> str:
    y = base + 14
    if "labels" in shift.reference:
        labels = list(shift.reference["labels"])
        if shift.high_cardinality:
            labels = [OTHER if v == OTHER else f"#{i + 1}" for i, v in enumerate(labels)]
        every = max(1, n // 6)
        return "".join(
            f'<text x="{_num(left + i * step + step / 2)}" y="{_num(y)}" text-anchor="middle">'
            f"{_e(_label(v))}</text>"
            for i, v in enumerate(labels)
            if i % every == 0 or v == OTHER
        )
    edges = shift.reference.get("edges") or []
    if not edges:
        return ""
    if _constant(shift):
        value = _edge_text(shift, edges[0], 0.0)
        names = [f"< {value}", f"= {value}", f"> {value}"]
        return "".join(
            f'<text x="{_num(left + i * step + step / 2)}" y="{_num(y)}" text-anchor="middle">'
            f"{_e(name)}</text>"
            for i, name in enumerate(names)
        )
    span = float(edges[-1]) - float(edges[0])
    lo, hi = _edge_text(shift, edges[0], span), _edge_text(shift, edges[-1], span)
    return (
        f'<text x="{_num(left)}" y="{_num(y)}">{_e(lo)}</text>'
        f'<text x="{_num(left + step * n)}" y="{_num(y)}" text-anchor="end">{_e(hi)}</text>'
    )


def _edge_text(shift: ColumnShift, value: float, span: float) -> str:
    if shift.kind == "temporal":
        return _fmt_time(float(value), span)
    return _fmt(float(value))


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{_e(title)}</title>'
    )


def _axes(left: float, top: float, w: float, h: float, peak: float, percent: bool = False) -> str:
    base = top + h
    out = [
        f'<line x1="{_num(left)}" y1="{_num(base)}" x2="{_num(left + w)}" y2="{_num(base)}" '
        'stroke="#98a2b3"/>'
    ]
    for frac in (0.5, 1.0):
        y = base - h * frac
        value = peak * frac
        text = f"{value:.0%}" if percent else _fmt(value)
        out.append(
            f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + w)}" y2="{_num(y)}" '
            'stroke="#eef1f5"/>'
            f'<text x="{_num(left - 4)}" y="{_num(y + 4)}" text-anchor="end">{_e(text)}</text>'
        )
    return "".join(out)


# -- page ------------------------------------------------------------------------------------


def render_html(summary: QualitySummary, *, title: str | None = None) -> str:
    """Return the quality report of ``summary`` as one self-contained HTML page.

    Example:
        >>> # page = render_html(summarize(ws.lake, "flights")); "<svg" in page
    """
    heading = title or f"Data quality: {summary.table}@{summary.version}"
    ref = summary.reference_version
    significant = sum(1 for s in summary.shifts if s.severity == "significant")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(heading)}</h1>",
        f"<div class='muted'>Table {_e(summary.table)}, version {summary.version}"
        f"{'' if ref is None else f', compared with version {ref}'}; "
        f"generated {_e(summary.created_at.strftime('%Y-%m-%d %H:%M:%S UTC'))}.</div>",
        "<div class='cards'>",
        _card("rows", _fmt(summary.row_count)),
        _card("versions", _fmt(len(summary.volume))),
        _card("newest row age", _age_text(summary)),
        _card("schema changes", _fmt(len(summary.schema_changes))),
        _card("significant shifts", _fmt(significant)),
        _card("events", _fmt(len(summary.events))),
        "</div>",
        "<h2>Freshness</h2>",
        _freshness_table(summary),
        "<h2>Volume</h2>",
        _volume_section(summary),
        "<h2>Distribution shifts</h2>",
        _shift_section(summary),
        _withheld_note(summary),
        "<h2>Schema changes</h2>",
        _schema_table(summary),
        "<h2>Events</h2>",
        _events_table(summary),
        "<h2>Lineage</h2>",
        _lineage_table(summary),
        "</body></html>",
    ]
    return "".join(parts)


def write_html(summary: QualitySummary, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write the report of ``summary`` to ``path`` atomically; return the path.

    Example:
        >>> # write_html(summarize(ws.lake, "flights"), "quality.html")
    """
    from plinth._core.files import atomic_write_bytes

    target = Path(path)
    atomic_write_bytes(target, render_html(summary, **options).encode("utf-8"))
    return target


def _card(label: str, value: str) -> str:
    return f"<div class='card'><span class='muted'>{_e(label)}</span><b>{_e(value)}</b></div>"


def _age_text(summary: QualitySummary) -> str:
    fresh = summary.freshness
    if fresh is None or fresh.age is None:
        return "-"
    seconds = fresh.age.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> str:
    if not rows:
        return f"<p class='muted'>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _freshness_table(summary: QualitySummary) -> str:
    fresh = summary.freshness
    if fresh is None:
        return "<p class='muted'>The table has no timestamp column, so freshness is unknown.</p>"
    newest = fresh.newest.isoformat() if fresh.newest else "no rows"
    row = [
        _e(fresh.column),
        _e(fresh.version),
        _e(newest),
        _e(_age_text(summary)),
        _e(fresh.checked_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    return _table(["column", "version", "newest value", "age", "checked"], [row], "")


def _volume_section(summary: QualitySummary) -> str:
    points = summary.volume[-VOLUME_VERSIONS:]
    chart = bar_chart(
        [f"v{p.version}" for p in points],
        [p.row_count for p in points],
        title="Rows per version",
    )
    rows = [
        [_e(p.version), _e(_fmt(p.row_count)), _e(p.created_at.strftime("%Y-%m-%d %H:%M:%S"))]
        for p in summary.volume[-10:]
    ]
    return chart + _table(["version", "rows", "created (UTC)"], rows, "No versions.")


def _shift_section(summary: QualitySummary) -> str:
    if not summary.shifts:
        return "<p class='muted'>The versions share no comparable columns.</p>"
    if summary.reference_version is None:
        panels = [
            f"<div class='panel'><h3>{_e(shift.column)} <span class='muted'>"
            f"({_e(shift.kind)})</span></h3>{overlay_histogram(shift)}</div>"
            for shift in summary.shifts[:HISTOGRAM_COLUMNS]
        ]
        return (
            f"<p class='muted'>Only one version so far: nothing to compare with. The "
            f"distributions of v{summary.version}:</p><div class='grid'>{''.join(panels)}</div>"
        )
    legend = (
        f"<div class='legend muted'>Shares of non-null rows:<span style='background:{REF_COLOR}'>"
        f"</span>reference v{summary.reference_version}<span style='background:{CUR_COLOR}'>"
        f"</span>current v{summary.version}</div>"
    )
    panels = []
    for shift in summary.shifts[:HISTOGRAM_COLUMNS]:
        panels.append(
            f"<div class='panel'><h3>{_e(shift.column)} <span class='muted'>({_e(shift.kind)}"
            f", PSI {_psi_text(shift)})</span></h3>{overlay_histogram(shift)}"
            f"{_category_notes(shift)}</div>"
        )
    rows = [
        [
            _e(s.column),
            _e(s.kind),
            _psi_text(s),
            f"{s.reference_null_fraction:.1%} → {s.current_null_fraction:.1%}",
            _category_cell(s),
        ]
        for s in summary.shifts
    ]
    table = _table(["column", "kind", "PSI", "nulls", "categories"], rows, "")
    return psi_chart(summary.shifts) + legend + f"<div class='grid'>{''.join(panels)}</div>" + table


def _withheld_note(summary: QualitySummary) -> str:
    """Name the columns withheld as personal data (their values are never drawn)."""
    from plinth.quality.privacy import WITHHELD

    names = summary.withheld
    if not names:
        return ""
    listed = ", ".join(_e(n) for n in names)
    return f"<p class='muted'>{_e(WITHHELD.capitalize())}: {listed}.</p>"


def _psi_text(shift: ColumnShift) -> str:
    if shift.psi is None:
        return "<span class='muted'>n/a</span>"
    css = {"significant": "sig", "moderate": "mod"}.get(shift.severity, "ok")
    return f"<span class='{css}'>{shift.psi:.3f}</span>"


def _category_cell(shift: ColumnShift) -> str:
    if shift.high_cardinality:
        return "<span class='muted'>high cardinality: values not shown</span>"
    parts = []
    if shift.new_categories:
        parts.append("new: " + _e(", ".join(_label(v) for v in shift.new_categories[:10])))
    if shift.missing_categories:
        parts.append("missing: " + _e(", ".join(_label(v) for v in shift.missing_categories[:10])))
    return "<br>".join(parts)


def _category_notes(shift: ColumnShift) -> str:
    cell = _category_cell(shift)
    return f"<div class='muted'>{cell}</div>" if cell else ""


def _schema_table(summary: QualitySummary) -> str:
    rows = []
    for change in summary.schema_changes:
        added = ", ".join(f"{c['name']} ({c['type']})" for c in change.added)
        removed = ", ".join(c["name"] for c in change.removed)
        changed = ", ".join(f"{c['name']}: {c['from']} → {c['to']}" for c in change.changed)
        rows.append(
            [
                _e(f"{change.from_version} → {change.to_version}"),
                _e(added),
                _e(removed),
                _e(changed),
            ]
        )
    return _table(["versions", "added", "removed", "type changed"], rows, "No schema changes.")


def _events_table(summary: QualitySummary) -> str:
    rows = [
        [
            _e(e.created_at.strftime("%Y-%m-%d %H:%M:%S")),
            _e(e.kind),
            _e(e.subject_id),
            _e(e.severity),
            _e(e.message),
        ]
        for e in summary.events
    ]
    return _table(["time (UTC)", "kind", "subject", "severity", "message"], rows, "No events.")


def _lineage_table(summary: QualitySummary) -> str:
    rows = [[_e(e["source"]), _e(e["relation"]), _e(e["target"])] for e in summary.lineage]
    return _table(["source", "relation", "target"], rows, "No recorded upstream sources.")
