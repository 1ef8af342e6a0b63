"""The control-plane API's routers, one per area, mounted under ``/api/v1``."""

from __future__ import annotations

from plinth.server.api import (
    access,
    audit,
    cost,
    deployments,
    features,
    lineage,
    meta,
    models,
    monitoring,
    pipelines,
    runs,
    tables,
)

__all__ = ["ROUTERS"]

#: Every router of the API, in the order the docs list them.
ROUTERS = [
    meta.router,
    tables.router,
    tables.contracts_router,
    features.router,
    runs.router,
    models.router,
    pipelines.router,
    deployments.router,
    monitoring.router,
    lineage.router,
    audit.router,
    cost.router,
    access.router,
]
