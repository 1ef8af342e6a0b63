"""Lineage of any catalog object, up to its sources or down to what was made from it.

Nothing is recorded for lineage on its own: the graph is read from what each stage already
keeps, the stored lineage edges (files into table versions, tables into training sets, inputs
of runs and pipeline steps) and the records themselves (a model version's run, training set and
feature service; aliases, deployments, the prediction log, monitor profiles, alerts and the
retraining pipeline runs they started). Neighbours are queried only as the walk reaches them.

Edges always point from input to output, whichever way the walk goes::

    file -> table_version -> training_set -> run -> model_version -> alias -> deployment
         -> prediction_log -> monitor_profile -> alert -> pipeline_run -> model_version ...

Example:
    >>> # graph = lineage(ws, "delay@champion"); rich.print(graph.render_tree())
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plinth.catalog import models as m
from plinth.errors import ConfigError, NotFoundError, PlinthError
from plinth.governance.lineage_records import (
    DEFINITION,
    DERIVED,
    ROWS,
    Context,
    Found,
    Key,
    definition_version,
    fetch,
    prediction_log,
)

if TYPE_CHECKING:
    from rich.text import Text
    from rich.tree import Tree

    from plinth.workspace import Workspace

__all__ = ["FORMS", "LineageEdge", "LineageGraph", "LineageNode", "lineage", "resolve"]

DIRECTIONS = ("up", "down", "both")
#: A walk without a depth limit stops after this many nodes (``truncated`` then says so).
MAX_NODES = 2000
#: The object references :func:`lineage` accepts, for messages and docs.
FORMS = (
    "NAME@ALIAS (delay@champion), NAME:VERSION (delay:1), models:/NAME/VERSION, TABLE@N "
    "(flights@0), table:TABLE[@N], feature_view:NAME[@N], feature_service:NAME[@N], "
    "entity:NAME[@N], training_set:ts_..., run:run_..., pipeline_run:pr_..., "
    "step_run:pr_.../STEP, deployment:NAME, alias:NAME@ALIAS, prediction_log:MODEL, "
    "monitor_profile:ID, alert:ID, gate_decision:ID, file:SHA256, query:SHA256, artifact:SHA256"
)
_PREFIXES = {"table": "table_version", "view": "feature_view", "model": "model_version"}
_HASHED = ("file", "query", "artifact")
_KINDS = {*ROWS, *DEFINITION, *_HASHED, "table_version", "model_version", "alias"} | {
    "step_run",
    "prediction_log",
}
_HEX = re.compile(r"^(?:sha256:)?([0-9a-f]{8,64})$")


@dataclass(frozen=True)
class LineageNode:
    """One object of the graph, named by ``kind`` and ``id``.

    ``level`` is its signed distance from the root (negative upstream); ``attributes`` hold what
    the catalog says about it (a file's ``sha256`` and ``path``, a run's ``params`` ...).
    """

    kind: str
    id: str
    label: str
    level: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The node's reference, ``kind:id``, which :func:`lineage` accepts back."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class LineageEdge:
    """``source`` (an input, as a node key) led to ``target`` by ``relation``."""

    source: str
    target: str
    relation: str
    details: dict[str, Any] | None = None


@dataclass
class LineageGraph:
    """The nodes and edges one walk reached from ``root``.

    Example:
        >>> g = LineageGraph("run:r1", "up", None)
        >>> LineageGraph.from_dict(g.to_dict()) == g
        True
    """

    root: str
    direction: str
    depth: int | None
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)
    truncated: bool = False

    def upstream(self, key: str) -> list[LineageEdge]:
        """The edges into ``key``: its inputs."""
        return [e for e in self.edges if e.target == key]

    def downstream(self, key: str) -> list[LineageEdge]:
        """The edges out of ``key``: what was made from it."""
        return [e for e in self.edges if e.source == key]

    def of_kind(self, kind: str) -> list[LineageNode]:
        """The nodes of one kind, nearest the root first.

        Example:
            >>> # [n.attributes["sha256"] for n in graph.of_kind("file")]
        """
        return sorted(
            (n for n in self.nodes.values() if n.kind == kind), key=lambda n: abs(n.level)
        )

    def to_dict(self) -> dict[str, Any]:
        """The graph as JSON-ready data; :meth:`from_dict` reads it back.

        Example:
            >>> LineageGraph("run:r1", "up", 2).to_dict()["depth"]
            2
        """
        return {
            "root": self.root,
            "direction": self.direction,
            "depth": self.depth,
            "truncated": self.truncated,
            "nodes": [{"key": n.key, **n.__dict__} for n in self.nodes.values()],
            "edges": [dict(e.__dict__) for e in self.edges],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageGraph:
        """Rebuild a graph from :meth:`to_dict` output (a JSON file, an API answer).

        Example:
            >>> LineageGraph.from_dict(LineageGraph("run:r1", "down", None).to_dict()).direction
            'down'
        """
        fields = ("kind", "id", "label", "level", "attributes")
        nodes = [LineageNode(*(n[f] for f in fields)) for n in data["nodes"]]
        edges = [LineageEdge(**e) for e in data["edges"]]
        truncated = bool(data.get("truncated"))
        nodes_by_key = {n.key: n for n in nodes}
        return cls(
            data["root"], data["direction"], data.get("depth"), nodes_by_key, edges, truncated
        )

    def render_tree(self) -> Tree:
        """The graph as a ``rich`` tree from the root, each node expanded once.

        A node is expanded where a breadth-first walk first reaches it, so at its shortest
        distance from the root; other mentions say "(shown elsewhere)".

        Example:
            >>> # rich.print(lineage(ws, "delay@champion").render_tree())
        """
        from rich.tree import Tree

        tree = Tree(_line(self.nodes[self.root], None, "bold"))
        ways = ["up", "down"] if self.direction == "both" else [self.direction]
        for way in ways:
            branch = tree.add(f"{way}stream", style="dim") if len(ways) > 1 else tree
            self._grow(branch, self.root, way, self._homes(way))
            if not self._next(self.root, way):
                branch.add(f"nothing recorded {way}stream", style="dim")
        if self.truncated:
            tree.add(f"... stopped after {len(self.nodes)} nodes; pass a depth", style="yellow")
        return tree

    def _next(self, key: str, way: str) -> list[tuple[LineageEdge, str]]:
        edges = self.upstream(key) if way == "up" else self.downstream(key)
        found = [(e, e.source if way == "up" else e.target) for e in edges]
        return sorted(found, key=lambda pair: (pair[0].relation, pair[1]))

    def _homes(self, way: str) -> dict[str, LineageEdge]:
        """The edge under which each node is expanded: the first that reaches it."""
        homes: dict[str, LineageEdge] = {}
        frontier, seen = [self.root], {self.root}
        while frontier:
            following = []
            for key in frontier:
                for edge, other in self._next(key, way):
                    if other not in seen:
                        seen.add(other)
                        homes[other] = edge
                        following.append(other)
            frontier = following
        return homes

    def _grow(self, branch: Tree, key: str, way: str, homes: dict[str, LineageEdge]) -> None:
        for edge, other in self._next(key, way):
            home = homes.get(other) is edge
            child = branch.add(_line(self.nodes[other], edge.relation, "", again=not home))
            if home:
                self._grow(child, other, way, homes)


#: The attributes a tree line shows after a node's label.
_SUMMARY = {
    "file": ("sha256", "bytes"),
    "query": ("sha256", "url"),
    "table_version": ("row_count", "operation", "created_at"),
    "training_set": ("row_count", "created_at"),
    "run": ("experiment", "status", "code_commit", "params"),
    "model_version": ("flavor", "aliases", "code_commit", "created_at"),
    "alias": ("version", "set_at"),
    "deployment": ("routes", "revision", "target"),
    "prediction_log": ("row_count",),
    "monitor_profile": ("reference_rows", "log_version"),
    "alert": ("severity", "state", "fired_at"),
    "pipeline_run": ("pipeline", "status", "started_at"),
    "step_run": ("status", "cached_from"),
    "gate_decision": ("passed", "decided_at"),
    "feature_view": ("source", "features"),
    "feature_service": ("features",),
}


def _line(node: LineageNode, relation: str | None, style: str, again: bool = False) -> Text:
    from rich.text import Text

    text = Text()
    if relation:
        text.append(f"{relation} ", style="dim italic")
    text.append(f"{node.kind} ", style="cyan")
    text.append(node.label, style=style)
    if again:
        return text.append("  (shown elsewhere)", style="dim")
    parts = []
    for key in _SUMMARY.get(node.kind, ()):
        value = node.attributes.get(key)
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        elif key.endswith("_at") and isinstance(value, str):
            value = value[:19].replace("T", " ")
        elif key == "code_commit" and isinstance(value, str):
            value = value[:12]
        if value not in (None, ""):
            parts.append(f"{_SHOWN_AS.get(key, key)} {value}")
    return text.append(f"  {' · '.join(parts)}" if parts else "", style="dim")


_SHOWN_AS = {"row_count": "rows", "code_commit": "commit", "created_at": "at", "set_at": "at"}


# -- resolving references -----------------------------------------------------------------


def resolve(ws: Workspace, obj: str) -> str:
    """The node key (``kind:id``) of an object reference; unknown objects raise.

    Example:
        >>> # resolve(ws, "delay@champion") -> 'model_version:delay/1'
    """
    text = (obj or "").strip()
    if not text:
        raise ConfigError("No object was named.", hint=f"Name one as {FORMS}.")
    with ws.catalog.session() as s:
        kind, ident = _resolve(ws, s, text)
    return f"{kind}:{ident}"


def _resolve(ws: Workspace, s: Session, text: str) -> Key:
    prefix, sep, rest = text.partition(":")
    kind = _PREFIXES.get(prefix, prefix)
    if sep and kind in _KINDS and not text.startswith("models:/"):
        return _resolve_kind(ws, s, kind, rest.strip())
    guesses = {"ts_": "training_set", "run_": "run", "pr_": "pipeline_run"}
    for start, kind in guesses.items():
        if text.startswith(start):
            return _resolve_kind(ws, s, kind, text)
    if _HEX.match(text):
        return _resolve_kind(ws, s, "file", text)
    if re.fullmatch(r"[^@:/]+@\d+", text):
        return _resolve_kind(ws, s, "table_version", text)
    if "@" in text or ":" in text:
        return _resolve_kind(ws, s, "model_version", text)
    for kind in ("model_version", "table_version", "deployment"):
        try:
            return _resolve_kind(ws, s, kind, text)
        except PlinthError:
            continue
    raise NotFoundError(
        f"Nothing named '{text}' is in the catalog (no model, table or deployment).",
        hint=f"Name an object as {FORMS}.",
    )


def _resolve_kind(ws: Workspace, s: Session, kind: str, ident: str) -> Key:
    name, at, version = ident.partition("@")
    if kind == "model_version":
        name, number = ws.models.resolve(re.sub(r"^([^/@:]+)/(\d+)$", r"\1:\2", ident))
        return kind, f"{name}/{number}"
    if kind == "alias":
        ws.models.resolve(ident)
    elif kind == "table_version":
        if at and not version.isdigit():
            raise ConfigError(
                f"'{ident}' does not name a table version.",
                hint="Write TABLE@N, or TABLE for its newest version.",
            )
        return kind, ws.lake.version(name, int(version) if version else None).ref
    elif kind == "prediction_log":
        from plinth.serving.prediction_log import log_table

        ws.lake.version(log_table(ident))
    elif kind in _HASHED:
        match = _HEX.match(ident)
        if match is None:
            raise ConfigError(
                f"'{ident}' is not a sha256 content hash.",
                hint="Give at least 8 hex digits of the sha256.",
            )
        e, pattern = m.LineageEdge, f"sha256:{match.group(1)}%"
        query = select(e.source_id).where(e.source_kind == kind, e.source_id.like(pattern))
        found = set(s.scalars(query))
        query = select(e.target_id).where(e.target_kind == kind, e.target_id.like(pattern))
        found |= set(s.scalars(query))
        if len(found) != 1:
            raise _not_found(kind, ident, "Give more of the sha256." if found else None)
        return kind, found.pop()
    else:
        if kind in DEFINITION and not at:
            ident = f"{name}@{definition_version(s, kind, name)}"
        if fetch(s, kind, ident) is None:
            raise _not_found(kind, ident)
    return kind, ident


def _not_found(kind: str, ident: str, hint: str | None = None) -> NotFoundError:
    return NotFoundError(
        f"No {kind.replace('_', ' ')} '{ident}' is in the catalog.",
        hint=hint or f"Name an object as {FORMS}.",
    )


# -- walking ------------------------------------------------------------------------------


def lineage(
    ws: Workspace, obj: str, direction: str = "up", depth: int | None = None
) -> LineageGraph:
    """Walk the lineage of ``obj`` ``up`` (its inputs), ``down`` (its outputs) or ``both``.

    ``obj`` is any reference in :data:`FORMS`; ``delay@champion`` is the version the alias
    points at now. ``depth`` limits the hops from the root; ``None`` walks to the end (at most
    :data:`MAX_NODES` nodes). Unknown objects raise :class:`~plinth.errors.NotFoundError`,
    malformed references :class:`~plinth.errors.ConfigError`.

    Example:
        >>> # g = lineage(ws, "delay@champion", "up")
        >>> # [n.attributes["sha256"] for n in g.of_kind("file")]
    """
    if direction not in DIRECTIONS:
        hint = "Use 'up', 'down' or 'both'."
        raise ConfigError(f"'{direction}' is not a lineage direction.", hint=hint)
    if depth is not None and depth < 0:
        raise ConfigError(f"A depth of {depth} is negative.", hint="Give 0 or more hops.")
    graph = LineageGraph(resolve(ws, obj), direction, depth)
    with ws.catalog.session() as s:
        _Walker(ws, s).walk(graph)
    return graph


class _Walker:
    """One breadth-first walk: levels and edges first, then a description of every node."""

    def __init__(self, ws: Workspace, s: Session) -> None:
        self.ws, self.s = ws, s
        self.context = Context(ws, s)
        self.details: dict[Key, dict[str, Any]] = {}

    def walk(self, graph: LineageGraph) -> None:
        kind, _, ident = graph.root.partition(":")
        levels: dict[Key, int] = {(kind, ident): 0}
        edges: dict[tuple[str, str, str], LineageEdge] = {}
        for way in ["up", "down"] if graph.direction == "both" else [graph.direction]:
            frontier, hop = [(kind, ident)], 0
            while frontier and (graph.depth is None or hop < graph.depth):
                hop, following = hop + 1, []
                for node in frontier:
                    for other, relation, details in self.neighbours(node, way):
                        if other not in levels and len(levels) >= MAX_NODES:
                            graph.truncated = True
                            continue
                        if other not in levels:
                            levels[other] = -hop if way == "up" else hop
                            following.append(other)
                        if details and other[0] in _HASHED:
                            self.details.setdefault(other, details)
                        pair = (other, node) if way == "up" else (node, other)
                        edge = LineageEdge(*(":".join(k) for k in pair), relation, details)
                        edges.setdefault((edge.source, edge.target, relation), edge)
                frontier = following
        for (kind, ident), level in levels.items():
            label, attributes = self.describe(kind, ident)
            node = LineageNode(kind, ident, label, level, _json_ready(attributes))
            graph.nodes[node.key] = node
        graph.edges = list(edges.values())

    def neighbours(self, node: Key, way: str) -> Iterator[Found]:
        kind, ident = node
        e = m.LineageEdge
        if way == "up":
            query = select(e).where(e.target_kind == kind, e.target_id == ident)
        else:
            query = select(e).where(e.source_kind == kind, e.source_id == ident)
        for row in self.s.scalars(query.order_by(e.id)):
            if kind == "step_run" and "artifact" in (row.source_kind, row.target_kind):
                continue  # steps link to steps of their own run (see lineage_records)
            if way == "up":
                yield (row.source_kind, row.source_id), row.relation, row.details
            else:
                yield (row.target_kind, row.target_id), row.relation, row.details
        derive = DERIVED.get((kind, way))
        if derive is not None:
            yield from derive(self.context, ident)

    def describe(self, kind: str, ident: str) -> tuple[str, dict[str, Any]]:
        """A node's label and attributes, read from its catalog row."""
        if kind in _HASHED:
            e = m.LineageEdge
            query = select(e.details).where(e.source_kind == kind, e.source_id == ident)
            details = self.details.get((kind, ident)) or self.s.scalar(query.limit(1)) or {}
            digest = ident.removeprefix("sha256:")
            label = str(details.get("path") or f"sha256:{digest[:12]}...").rsplit("/", 1)[-1]
            return label, {"sha256": digest, **details}
        if kind == "prediction_log":
            found = prediction_log(self.context, ident)
            table = found[0] if found else ident
            return table, {
                "table": table,
                "version": found[1],
                "row_count": found[2],
            } if found else {}
        row = fetch(self.s, kind, ident)
        if row is None:
            return ident, {"missing": True}
        attributes = {
            c.key: getattr(row, c.key)
            for c in row.__table__.columns
            if (c.key not in _HIDDEN and not c.primary_key) or c.key == "version"
        }
        label = _LABELS.get(kind, lambda r: ident)(row)
        extra = _EXTRA.get(kind)
        return label, {**attributes, **(extra(self, row) if extra else {})}


#: Columns left out of node attributes (bulky, or said by the node's key already).
_HIDDEN = {
    "schema",
    "body",
    "environment",
    "arguments",
    "files",
    "signature",
    "details",
    "spec",
    "dag",
    "checks",
    "columns",
    "spec_hash",
    "requested",
    "table_id",
    "manifest_digest",
}


def _run_extra(w: _Walker, row: m.Run) -> dict[str, Any]:
    p = m.RunParam
    params = {k: v for k, v in w.s.execute(select(p.key, p.value).where(p.run_id == row.id))}
    git = (row.environment or {}).get("git") or {}
    return {"params": params, "code_commit": git.get("commit"), "code_dirty": git.get("dirty")}


def _model_extra(w: _Walker, row: m.ModelVersion) -> dict[str, Any]:
    a = m.ModelAlias
    query = select(a.alias).where(a.model_name == row.model_name, a.version == row.version)
    return {"aliases": list(w.s.scalars(query.order_by(a.alias)))}


def _definition_extra(w: _Walker, row: m.FeatureDefinition) -> dict[str, Any]:
    keys = ("source", "entities", "join_keys", "features", "timestamp")
    return {k: list(v) if k == "features" else v for k, v in row.spec.items() if k in keys}


def _deployment_extra(w: _Walker, row: m.Deployment) -> dict[str, Any]:
    from plinth.serving.deployments import DeploymentSpec

    return {"routes": DeploymentSpec.from_dict(row.spec).describe()}


_LABELS: dict[str, Callable[[Any], str]] = {
    "model_version": lambda r: f"{r.model_name}:{r.version}",
    "monitor_profile": lambda r: f"{r.model_name}:{r.model_version} #{r.id}",
    "alert": lambda r: f"#{r.id} {r.rule}",
    "gate_decision": lambda r: f"#{r.id} {r.model_name}:{r.candidate_version}",
    "step_run": lambda r: f"{r.step} ({r.pipeline_run_id})",
}
_EXTRA: dict[str, Callable[[_Walker, Any], dict[str, Any]]] = {
    "run": _run_extra,
    "model_version": _model_extra,
    "deployment": _deployment_extra,
    "alert": lambda w, r: {"model_uri": (r.details or {}).get("model_uri")},
    "table_version": lambda w, r: {"source": (r.source or {}).get("kind")},
    **{k: _definition_extra for k in DEFINITION},
}


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value
