"""Plinth: AI infrastructure in one package.

The public API is re-exported here and loaded lazily, so ``import plinth`` stays fast.

Example:
    >>> import plinth
    >>> plinth.Workspace.__name__
    'Workspace'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ArtifactStore",
    "Contract",
    "Entity",
    "FeatureService",
    "FeatureView",
    "PlinthError",
    "Resources",
    "Run",
    "Settings",
    "Table",
    "TableInfo",
    "VersionInfo",
    "Workspace",
    "__version__",
    "pipeline",
    "step",
]

_EXPORTS = {
    "ArtifactStore": "plinth.storage",
    "Contract": "plinth.quality.contracts",
    "Entity": "plinth.features.definitions",
    "FeatureService": "plinth.features.definitions",
    "FeatureView": "plinth.features.definitions",
    "PlinthError": "plinth.errors",
    "Resources": "plinth.pipelines.steps",
    "Table": "plinth.pipelines.steps",
    "pipeline": "plinth.pipelines.definition",
    "step": "plinth.pipelines.steps",
    "Run": "plinth.tracking.run",
    "Settings": "plinth._core.settings",
    "TableInfo": "plinth.lake.records",
    "VersionInfo": "plinth.lake.records",
    "Workspace": "plinth.workspace",
}

if TYPE_CHECKING:
    from plinth._core.settings import Settings
    from plinth.errors import PlinthError
    from plinth.features.definitions import Entity, FeatureService, FeatureView
    from plinth.lake.records import TableInfo, VersionInfo
    from plinth.pipelines.definition import pipeline
    from plinth.pipelines.steps import Resources, Table, step
    from plinth.quality.contracts import Contract
    from plinth.storage import ArtifactStore
    from plinth.tracking.run import Run
    from plinth.workspace import Workspace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plinth' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
