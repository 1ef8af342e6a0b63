"""The catalog: every stage's records in one SQL database (SQLite embedded, or PostgreSQL)."""

from __future__ import annotations

from plinth.catalog.db import Catalog
from plinth.catalog.lineage import Edge, Node, add_edge, walk

__all__ = ["Catalog", "Edge", "Node", "add_edge", "walk"]
