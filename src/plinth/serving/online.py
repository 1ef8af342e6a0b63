"""Online feature lookup for a served model: entity keys in, the feature columns out.

The model version's feature service is resolved once, when the version loads, into the views,
their keys and features; a request then costs one store read per view for all of its rows
(or a whole micro-batch's rows). Missing and expired values come back as ``None`` and are
counted by status, so a model trained with missing values (LightGBM) still answers and the
metrics show how often it had to.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plinth.errors import SchemaMismatchError
from plinth.serving.inputs import Columns

if TYPE_CHECKING:
    from plinth.features.online.base import OnlineStore
    from plinth.workspace import Workspace


@dataclass(frozen=True)
class _ViewLookup:
    view: str
    keys: tuple[str, ...]
    features: tuple[str, ...]
    columns: tuple[str, ...]
    ttl: Any


class OnlineFeatures:
    """The online features of one feature service, read for the rows of a request.

    Example:
        >>> # lookup = OnlineFeatures.of(ws, "delay")
        >>> # lookup.fetch({"origin": ["JFK"], "tailnum": ["N14228"]}, 1)
    """

    def __init__(
        self,
        store: OnlineStore,
        views: list[_ViewLookup],
        key_kinds: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.views = views
        self.keys = list(dict.fromkeys(k for v in views for k in v.keys))
        #: Each entity key's kind (integer, string ...) from its source table, for validation.
        self.key_kinds = dict(key_kinds or {})
        self.columns = [c for v in views for c in v.columns]
        self.statuses: Counter[str] = Counter()

    def provided(self, columns: Columns) -> bool:
        """Whether a request already carries every feature (then nothing is looked up)."""
        return all(c in columns for c in self.columns)

    @classmethod
    def of(cls, ws: Workspace, service: str) -> OnlineFeatures:
        """Resolve ``service`` in ``ws``'s catalog and open the online store.

        Example:
            >>> # OnlineFeatures.of(ws, "delay").columns[:2]
        """
        from plinth.features import registry
        from plinth.features.historical import feature_column
        from plinth.registry.signature import arrow_kind

        resolved = registry.resolve(ws, service)
        key_kinds: dict[str, str] = {}
        for s in resolved:
            schema = ws.lake.scan(s.view.source).schema
            for key in s.view.join_keys:
                if key in schema.names and key not in key_kinds:
                    key_kinds[key] = arrow_kind(schema.field(key).type)
        views = [
            _ViewLookup(
                s.view.name,
                tuple(s.view.join_keys),
                tuple(s.features),
                tuple(feature_column(s.view.name, f) for f in s.features),
                s.view.ttl,
            )
            for s in resolved
        ]
        store = ws.features.online_store
        for view in views:
            store.count(view.view)  # opens the connection now, not on the first request
        return cls(store, views, key_kinds)

    def fetch(self, keys: Columns, n: int, *, now: datetime | None = None) -> tuple[Columns, float]:
        """The feature columns for ``n`` rows of entity ``keys``, and the seconds it took.

        Example:
            >>> # columns, seconds = lookup.fetch({"origin": ["JFK"], "tailnum": ["N1"]}, 1)
        """
        begin = time.perf_counter()
        out: Columns = {}
        for view in self.views:
            key_values = [keys[k] for k in view.keys]
            try:
                entities = (
                    list(zip(*key_values, strict=True))
                    if len(key_values) > 1
                    else [(v,) for v in key_values[0]]
                )
                rows = self.store.read(view.view, entities, view.features, ttl=view.ttl, now=now)
            except (TypeError, ValueError) as exc:
                raise SchemaMismatchError(
                    f"Entity keys {', '.join(view.keys)} of view '{view.view}' cannot be "
                    f"looked up: {exc}",
                    hint="Send key values as strings or numbers, as the feature view stores them.",
                ) from exc
            for feature, column in zip(view.features, view.columns, strict=True):
                values: list[Any] = []
                for row in rows:
                    status = row.statuses.get(feature, "missing")
                    self.statuses[status] += 1
                    values.append(row.values.get(feature) if status == "present" else None)
                out[column] = values
        return out, time.perf_counter() - begin
