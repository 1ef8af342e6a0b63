"""Lineage: edges between catalog objects, and walks up or down the graph."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plinth._core.clock import utcnow
from plinth.catalog.models import LineageEdge


@dataclass(frozen=True)
class Node:
    """A lineage node: a kind (``file``, ``query``, ``table_version`` ...) and an id."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


def add_edge(
    session: Session,
    source: Node,
    target: Node,
    relation: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record ``source -> target`` in the current transaction (idempotent).

    Example:
        >>> # add_edge(session, Node("file", "sha256:ab"), Node("table_version", "t@0"), "ingested")
    """
    exists = session.execute(
        select(LineageEdge.id).where(
            LineageEdge.source_kind == source.kind,
            LineageEdge.source_id == source.id,
            LineageEdge.target_kind == target.kind,
            LineageEdge.target_id == target.id,
            LineageEdge.relation == relation,
        )
    ).first()
    if exists:
        return
    session.add(
        LineageEdge(
            source_kind=source.kind,
            source_id=source.id,
            target_kind=target.kind,
            target_id=target.id,
            relation=relation,
            details=details,
            created_at=utcnow(),
        )
    )


@dataclass(frozen=True)
class Edge:
    """One lineage edge as read back from the catalog."""

    source: Node
    target: Node
    relation: str
    details: dict[str, Any] | None


def walk(session: Session, start: Node, direction: str = "up", depth: int = 10) -> list[Edge]:
    """Return the edges reachable from ``start`` going ``up`` (inputs) or ``down`` (outputs).

    Breadth first, each edge once, at most ``depth`` hops.

    Example:
        >>> # walk(session, Node("table_version", "flights@0"), "up")
    """
    if direction not in {"up", "down"}:
        raise ValueError("direction must be 'up' or 'down'")
    seen: set[tuple[str, str, str, str, str]] = set()
    result: list[Edge] = []
    frontier: Iterable[Node] = [start]
    for _ in range(depth):
        next_frontier: list[Node] = []
        for node in frontier:
            if direction == "up":
                query = select(LineageEdge).where(
                    LineageEdge.target_kind == node.kind, LineageEdge.target_id == node.id
                )
            else:
                query = select(LineageEdge).where(
                    LineageEdge.source_kind == node.kind, LineageEdge.source_id == node.id
                )
            for row in session.scalars(query.order_by(LineageEdge.id)):
                key = (row.source_kind, row.source_id, row.target_kind, row.target_id, row.relation)
                if key in seen:
                    continue
                seen.add(key)
                edge = Edge(
                    Node(row.source_kind, row.source_id),
                    Node(row.target_kind, row.target_id),
                    row.relation,
                    row.details,
                )
                result.append(edge)
                next_frontier.append(edge.source if direction == "up" else edge.target)
        if not next_frontier:
            break
        frontier = next_frontier
    return result
