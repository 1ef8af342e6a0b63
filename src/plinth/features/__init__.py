"""The feature store: entities, feature views and services; point-in-time training sets;
materialization to an online store (SQLite or Redis) with TTL enforced on read.
"""

from __future__ import annotations

from plinth.features.definitions import Entity, FeatureService, FeatureView

__all__ = ["Entity", "FeatureService", "FeatureView"]
