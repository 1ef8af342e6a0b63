"""Feature definitions: entities, feature views and feature services, declared in Python.

Example::

    from plinth import Entity, FeatureService, FeatureView

    origin = Entity("origin", join_keys=["origin"])
    weather = FeatureView(
        "weather",
        source="weather",
        entities=[origin],
        timestamp="time_hour",
        ttl="3h",
        features={"temp": "temp", "temp_c": "(temp - 32) * 5 / 9"},
    )
    delay = FeatureService("delay", features=["weather", "planes:seats"])
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from plinth.errors import ConfigError
from plinth.quality.contracts import parse_duration

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{kind} name {name!r} is not valid.",
            hint="Use letters, digits and underscores, starting with a letter or underscore.",
        )
    return name


def _hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Entity:
    """Something features describe, identified by one or several join keys.

    Example:
        >>> Entity("flight", join_keys=["carrier", "flight"]).join_keys
        ('carrier', 'flight')
    """

    name: str
    join_keys: tuple[str, ...] = ()
    description: str = ""

    def __init__(
        self, name: str, join_keys: Sequence[str] | None = None, description: str = ""
    ) -> None:
        _check_name("Entity", name)
        keys = tuple(join_keys or [name])
        if not keys or len(set(keys)) != len(keys):
            raise ConfigError(f"Entity '{name}' needs distinct join keys, got {list(keys)}.")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "description", description)

    def spec(self) -> dict[str, Any]:
        """JSON form stored in the catalog."""
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "description": self.description,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Entity:
        """Rebuild from the catalog's JSON form."""
        return cls(spec["name"], spec["join_keys"], spec.get("description", ""))


@dataclass(frozen=True)
class FeatureView:
    """Features computed from one lake table, keyed by entities and stamped with event time.

    ``features`` maps each feature name to a column or a SQL expression over the source's
    columns. ``timestamp=None`` declares a static view (one current row per entity, no TTL).

    Example:
        >>> fv = FeatureView("planes", source="planes", entities=[Entity("tailnum")],
        ...                  timestamp=None, features={"seats": "seats"})
        >>> fv.join_keys
        ('tailnum',)
    """

    name: str
    source: str
    entities: tuple[Entity, ...]
    timestamp: str | None
    features: Mapping[str, str]
    ttl: timedelta | None = None
    created_timestamp: str | None = None
    description: str = ""
    _ttl_text: str | None = field(default=None, repr=False, compare=False)

    def __init__(
        self,
        name: str,
        *,
        source: str,
        entities: Sequence[Entity],
        timestamp: str | None,
        features: Mapping[str, str] | Sequence[str],
        ttl: str | int | float | timedelta | None = None,
        created_timestamp: str | None = None,
        description: str = "",
    ) -> None:
        _check_name("Feature view", name)
        if not entities:
            raise ConfigError(f"Feature view '{name}' needs at least one entity.")
        if not isinstance(features, Mapping):
            features = {f: f for f in features}
        if not features:
            raise ConfigError(f"Feature view '{name}' defines no features.")
        for feature in features:
            _check_name(f"Feature '{name}:", feature)
        if isinstance(ttl, timedelta):
            delta = ttl
        elif ttl is None:
            delta = None
        else:
            try:
                delta = parse_duration(ttl)
            except ValueError as exc:
                raise ConfigError(f"Feature view '{name}': {exc}.") from exc
        if delta is not None and delta.total_seconds() <= 0:
            raise ConfigError(f"Feature view '{name}' needs a positive ttl, got {ttl!r}.")
        # Stored as plain seconds, which parse_duration reads back exactly.
        text = None if delta is None else f"{delta.total_seconds()!r}s"
        if delta is not None and timestamp is None:
            raise ConfigError(
                f"Feature view '{name}' has a ttl but no timestamp column.",
                hint="Give timestamp=COLUMN, or drop the ttl of a static view.",
            )
        keys = [k for e in entities for k in e.join_keys]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"Feature view '{name}' repeats a join key: {keys}.")
        clash = set(keys) & set(features)
        if clash:
            raise ConfigError(
                f"Feature view '{name}' names features like its join keys: {sorted(clash)}."
            )
        for attr, value in (
            ("name", name),
            ("source", source),
            ("entities", tuple(entities)),
            ("timestamp", timestamp),
            ("features", dict(features)),
            ("ttl", delta),
            ("created_timestamp", created_timestamp),
            ("description", description),
            ("_ttl_text", text),
        ):
            object.__setattr__(self, attr, value)

    @property
    def join_keys(self) -> tuple[str, ...]:
        """The view's join keys: every entity's keys, in order."""
        return tuple(k for e in self.entities for k in e.join_keys)

    def spec(self) -> dict[str, Any]:
        """JSON form stored in the catalog."""
        return {
            "name": self.name,
            "source": self.source,
            "entities": [e.name for e in self.entities],
            "join_keys": list(self.join_keys),
            "timestamp": self.timestamp,
            "created_timestamp": self.created_timestamp,
            "ttl": self._ttl_text,
            "features": dict(self.features),
            "description": self.description,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], entities: Mapping[str, Entity]) -> FeatureView:
        """Rebuild from the catalog's JSON form."""
        return cls(
            spec["name"],
            source=spec["source"],
            entities=[entities[n] for n in spec["entities"]],
            timestamp=spec["timestamp"],
            features=spec["features"],
            ttl=spec.get("ttl"),
            created_timestamp=spec.get("created_timestamp"),
            description=spec.get("description", ""),
        )


@dataclass(frozen=True)
class FeatureService:
    """A named set of features a model uses: ``view`` (all its features) or ``view:feature``.

    Example:
        >>> FeatureService("delay", features=["weather", "planes:seats"]).features
        ('weather', 'planes:seats')
    """

    name: str
    features: tuple[str, ...]
    description: str = ""

    def __init__(
        self, name: str, features: Sequence[str | FeatureView], description: str = ""
    ) -> None:
        _check_name("Feature service", name)
        refs = tuple(f.name if isinstance(f, FeatureView) else str(f) for f in features)
        if not refs:
            raise ConfigError(f"Feature service '{name}' lists no features.")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "features", refs)
        object.__setattr__(self, "description", description)

    def spec(self) -> dict[str, Any]:
        """JSON form stored in the catalog."""
        return {"name": self.name, "features": list(self.features), "description": self.description}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FeatureService:
        """Rebuild from the catalog's JSON form."""
        return cls(spec["name"], spec["features"], spec.get("description", ""))


Definition = Entity | FeatureView | FeatureService
KINDS = {Entity: "entity", FeatureView: "view", FeatureService: "service"}


def kind_of(definition: Definition) -> str:
    """Return ``entity``, ``view`` or ``service``."""
    return KINDS[type(definition)]


def spec_hash(definition: Definition) -> str:
    """A stable hash of a definition's JSON form."""
    return _hash(definition.spec())


def collect(objects: Iterable[Any]) -> list[Definition]:
    """Return the definitions among ``objects`` (entities first, then views, then services)."""
    found = [o for o in objects if isinstance(o, Entity | FeatureView | FeatureService)]
    for view in [o for o in found if isinstance(o, FeatureView)]:
        found.extend(e for e in view.entities if e not in found)
    order = {"entity": 0, "view": 1, "service": 2}
    unique: dict[tuple[str, str], Definition] = {}
    for item in found:
        key = (kind_of(item), item.name)
        if key in unique and unique[key] != item:
            raise ConfigError(f"Two different definitions are named {key[0]} '{key[1]}'.")
        unique[key] = item
    return sorted(unique.values(), key=lambda d: (order[kind_of(d)], d.name))


def load_module(path: str | Path) -> list[Definition]:
    """Import a Python file (default ``features.py``) and return the definitions it declares.

    Example:
        >>> # load_module("features.py")
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"The definitions file '{file}' does not exist.",
            hint="Declare entities and feature views in features.py, or pass the file to apply.",
        )
    spec = importlib.util.spec_from_file_location(f"plinth_features_{abs(hash(file))}", file)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"Importing '{file}' failed: {type(exc).__name__}: {exc}.",
            hint="Fix the error in the definitions file.",
        ) from exc
    return collect(vars(module).values())


def specs_of(definitions: Iterable[Definition]) -> list[dict[str, Any]]:
    """Definitions as JSON data, each its spec with its ``kind`` (what the API sends).

    Example:
        >>> specs_of([Entity("id")])
        [{'kind': 'entity', 'name': 'id', 'join_keys': ['id'], 'description': ''}]
    """
    return [{"kind": kind_of(d), **d.spec()} for d in definitions]


def from_specs(items: Iterable[Mapping[str, Any]]) -> list[Definition]:
    """Rebuild definitions from :func:`specs_of` data (other keys, such as ``version``, are
    ignored); a view's entities must be among the items. Malformed data is a ConfigError.

    Example:
        >>> [d.name for d in from_specs(specs_of([Entity("id")]))]
        ['id']
    """
    items = list(items)
    for index, item in enumerate(items, start=1):
        kind = item.get("kind") if isinstance(item, Mapping) else None
        if kind not in ("entity", "view", "service"):
            raise ConfigError(
                f"Definition {index} has kind {kind!r}, not 'entity', 'view' or 'service'.",
                hint="Send each definition as its spec with its kind, as specs_of() makes it.",
            )
    entities = {str(i.get("name")): i for i in items if i["kind"] == "entity"}
    built: dict[str, Entity] = {}
    found: list[Definition] = []
    for index, item in enumerate(items, start=1):
        kind, name = item["kind"], item.get("name")
        spec = {k: v for k, v in item.items() if k not in ("kind", "version")}
        try:
            if kind == "entity":
                entity = Entity.from_spec(spec)
                found.append(entity)  # a clash with a same-named one is collect()'s to report
                built.setdefault(str(name), entity)
            elif kind == "view":
                names = [str(e) for e in spec["entities"]]
                missing = [e for e in names if e not in entities]
                if missing:
                    raise ConfigError(
                        f"Feature view {name!r} names entities that are not among the "
                        f"definitions: {', '.join(missing)}.",
                        hint="Send every entity a view uses along with the view.",
                    )
                for e in names:
                    built.setdefault(e, Entity.from_spec(entities[e]))
                found.append(FeatureView.from_spec({**spec, "entities": names}, built))
            else:
                found.append(FeatureService.from_spec(spec))
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"it lacks {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ConfigError(
                f"Definition {index} ({kind} {name!r}) is malformed: {detail}.",
                hint="Send each definition as its spec with its kind, as specs_of() makes it.",
            ) from exc
    return found
