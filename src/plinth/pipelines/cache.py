"""The step cache: outputs recorded under a cache key, re-used while their artifacts exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from plinth._core.clock import utcnow
from plinth.catalog.models import StepCacheEntry

if TYPE_CHECKING:
    from plinth.catalog import Catalog
    from plinth.storage import ArtifactStore

__all__ = ["lookup", "store"]


def lookup(
    catalog: Catalog, artifacts: ArtifactStore, key: str, outputs: tuple[str, ...]
) -> tuple[dict[str, str], str] | None:
    """The outputs (name to digest) and source run of a usable cache entry, or None.

    An entry is usable when it has exactly the step's outputs and every artifact is still in
    the store; otherwise the step runs again and its new outputs replace the entry.

    Example:
        >>> # lookup(ws.catalog, ws.artifacts, key, ("output",))
    """
    with catalog.session() as session:
        entry = session.get(StepCacheEntry, key)
        if entry is None:
            return None
        found, run_id = dict(entry.outputs), entry.pipeline_run_id
    if set(found) != set(outputs) or not all(artifacts.exists(d) for d in found.values()):
        return None
    return found, run_id


def store(catalog: Catalog, entry: dict[str, Any]) -> None:
    """Insert or replace a cache entry (``cache_key``, ``step``, ``outputs``,
    ``pipeline_run_id``); when a concurrent run wrote the same key first, keep theirs.

    Example:
        >>> # store(ws.catalog, {"cache_key": key, "step": "m:f", "outputs": {}, ...})
    """
    try:
        with catalog.session() as session:
            found = session.get(StepCacheEntry, entry["cache_key"])
            if found is None:
                session.add(StepCacheEntry(**entry, created_at=utcnow()))
            else:
                found.outputs = entry["outputs"]
                found.step = entry["step"]
                found.pipeline_run_id = entry["pipeline_run_id"]
                found.created_at = utcnow()
    except SQLIntegrityError:
        return
