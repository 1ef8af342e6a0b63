"""A lineage graph as one self-contained HTML page: an inline SVG drawing and a node table.

Nodes are laid out left to right by their level (inputs left of what was made from them, the
root in its own column), ordered in each column near the nodes they connect to. No script, no
style sheet or font from elsewhere: the file opens offline. Every label is escaped.

Example:
    >>> from plinth.governance.lineage import LineageGraph, LineageNode
    >>> g = LineageGraph("run:r1", "up", None, {"run:r1": LineageNode("run", "r1", "r1")})
    >>> "<svg" in render_html(g)
    True
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plinth.governance.lineage import LineageGraph, LineageNode

__all__ = ["render_html", "write_html"]

WIDTH, HEIGHT, GAP_X, GAP_Y, MARGIN = 250, 48, 80, 18, 24
#: Fill colours by node kind (other kinds are grey).
COLOURS = {
    "file": "#fde68a",
    "query": "#fde68a",
    "table_version": "#bfdbfe",
    "feature_view": "#c7d2fe",
    "feature_service": "#c7d2fe",
    "entity": "#e0e7ff",
    "training_set": "#a5f3fc",
    "run": "#bbf7d0",
    "model_version": "#86efac",
    "alias": "#d9f99d",
    "deployment": "#fbcfe8",
    "prediction_log": "#fecdd3",
    "monitor_profile": "#fed7aa",
    "alert": "#fca5a5",
    "pipeline_run": "#ddd6fe",
    "step_run": "#ede9fe",
    "gate_decision": "#e9d5ff",
}
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:14px system-ui,sans-serif;margin:24px;color:#111}}
svg text{{font:12px system-ui,sans-serif}} svg .kind{{font-size:10px;fill:#555}}
table{{border-collapse:collapse;margin-top:24px}} td,th{{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}} td pre{{margin:0;white-space:pre-wrap;font-size:12px}}</style>
</head><body><h1>{title}</h1><p>{summary}</p>
{svg}
<table><tr><th>node</th><th>level</th><th>attributes</th></tr>
{rows}
</table></body></html>
"""


def _layout(graph: LineageGraph) -> dict[str, tuple[float, float]]:
    """Top-left corner of every node: a column per level, rows ordered by their neighbours."""
    column = _columns(graph)
    columns: dict[int, list[str]] = {}
    for node in sorted(graph.nodes.values(), key=lambda n: (n.kind, n.label)):
        columns.setdefault(column[node.key], []).append(node.key)
    levels = sorted(columns)
    rank = {key: i for keys in columns.values() for i, key in enumerate(keys)}
    links: dict[str, list[str]] = {}
    for edge in graph.edges:
        links.setdefault(edge.source, []).append(edge.target)
        links.setdefault(edge.target, []).append(edge.source)
    for sweep in (levels, levels[::-1], levels):  # barycentre ordering, both ways
        for level in sweep:
            keys = columns[level]

            def centre(key: str, keys: list[str] = keys) -> float:
                near = [rank[k] for k in links.get(key, []) if k in rank and k not in keys]
                return sum(near) / len(near) if near else rank[key]

            keys.sort(key=centre)
            rank.update({key: i for i, key in enumerate(keys)})
    tallest = max(len(keys) for keys in columns.values())
    spots = {}
    for x, level in enumerate(levels):
        keys = columns[level]
        top = (tallest - len(keys)) * (HEIGHT + GAP_Y) / 2
        for y, key in enumerate(keys):
            spots[key] = (MARGIN + x * (WIDTH + GAP_X), MARGIN + top + y * (HEIGHT + GAP_Y))
    return spots


def _columns(graph: LineageGraph) -> dict[str, int]:
    """A column per node: its level, pushed out so every input stands left of its output."""
    column = {key: node.level for key, node in graph.nodes.items()}
    edges = [e for e in graph.edges if e.source in column and e.target in column]
    for _ in range(len(column)):
        moved = False
        for e in edges:
            if column[e.source] < column[e.target] or e.source == graph.root == e.target:
                continue
            if graph.nodes[e.source].level < 0 and e.source != graph.root:
                column[e.source], moved = column[e.target] - 1, True
            elif graph.nodes[e.target].level > 0 and e.target != graph.root:
                column[e.target], moved = column[e.source] + 1, True
        if not moved:
            break
    return column


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _tooltip(node: LineageNode) -> str:
    lines = [node.key] + [f"{k}: {v}" for k, v in node.attributes.items() if v not in (None, "")]
    return escape("\n".join(_short(line, 160) for line in lines))


def render_svg(graph: LineageGraph) -> str:
    """The graph as an ``<svg>`` element (boxes per node, arrows per edge, titles on hover).

    Example:
        >>> # svg = render_svg(lineage(ws, "delay@champion"))
    """
    spots = _layout(graph)
    width = max(x for x, _ in spots.values()) + WIDTH + MARGIN
    height = max(y for _, y in spots.values()) + HEIGHT + MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#888"/></marker></defs>',
    ]
    for edge in graph.edges:
        if edge.source not in spots or edge.target not in spots:
            continue
        (sx, sy), (tx, ty) = spots[edge.source], spots[edge.target]
        x1, y1, x2, y2 = sx + WIDTH, sy + HEIGHT / 2, tx, ty + HEIGHT / 2
        c1, c2 = x1 + max((x2 - x1) / 2, 40), x2 - max((x2 - x1) / 2, 40)
        if tx <= sx:  # an edge within a column (or backwards): an arc on the right side
            x2, c1, c2 = tx + WIDTH, x1 + GAP_X / 2, tx + WIDTH + GAP_X / 2
        out.append(
            f'<path d="M{x1:.0f},{y1:.0f} C{c1:.0f},{y1:.0f} {c2:.0f},{y2:.0f} '
            f'{x2:.0f},{y2:.0f}" fill="none" stroke="#999" marker-end="url(#arrow)">'
            f"<title>{escape(edge.relation)}</title></path>"
        )
    for key, (x, y) in spots.items():
        node = graph.nodes[key]
        stroke = ' stroke="#111" stroke-width="2.5"' if key == graph.root else ' stroke="#777"'
        out.append(
            f'<g><title>{_tooltip(node)}</title><rect x="{x:.0f}" y="{y:.0f}" width="{WIDTH}" '
            f'height="{HEIGHT}" rx="6" fill="{COLOURS.get(node.kind, "#e5e7eb")}"{stroke}/>'
            f'<text class="kind" x="{x + 8:.0f}" y="{y + 16:.0f}">{escape(node.kind)}</text>'
            f'<text x="{x + 8:.0f}" y="{y + 35:.0f}">{escape(_short(node.label))}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out)


def render_html(graph: LineageGraph, title: str | None = None) -> str:
    """A self-contained HTML page showing ``graph`` (no scripts or outside resources).

    Example:
        >>> # Path("lineage.html").write_text(render_html(lineage(ws, "delay@champion")))
    """
    title = title or f"Lineage of {graph.nodes[graph.root].label}"
    depth = "any depth" if graph.depth is None else f"depth {graph.depth}"
    summary = (
        f"{escape(graph.root)}: {graph.direction}stream, {depth}; {len(graph.nodes)} nodes, "
        f"{len(graph.edges)} edges{' (stopped early)' if graph.truncated else ''}. "
        "Inputs are on the left; hover a box or an arrow for details."
    )
    rows = "\n".join(
        f"<tr><td>{escape(n.key)}</td><td>{n.level}</td><td><pre>"
        f"{escape(json.dumps(n.attributes, indent=1, default=str))}</pre></td></tr>"
        for n in sorted(graph.nodes.values(), key=lambda n: (n.level, n.kind, n.id))
    )
    return _PAGE.format(title=escape(title), summary=summary, svg=render_svg(graph), rows=rows)


def write_html(graph: LineageGraph, path: str | Path, title: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` atomically and return the path.

    Example:
        >>> # write_html(lineage(ws, "delay@champion"), "lineage.html")
    """
    from plinth._core.files import atomic_write_bytes

    target = Path(path)
    atomic_write_bytes(target, render_html(graph, title).encode("utf-8"))
    return target
