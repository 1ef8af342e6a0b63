"""The web dashboard, served by the control-plane server under ``/ui``.

Server-rendered HTML with inline SVG charts (no scripts, nothing fetched from elsewhere):
tables, features, runs (metric curves downsampled on the server, comparisons), models
(versions, aliases, gate decisions, model card), pipelines (DAG and step status), deployments
(throughput and latency from the prediction log), monitoring (drift charts, alerts), lineage,
audit and cost. Log in by pasting a token (kept in an HttpOnly cookie); what the caller's role
cannot do is not offered. See docs/dashboard.md.

Example:
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.include_router(router)  # plinth.server.app.create_app does this
"""

from __future__ import annotations

# The page modules register their routes on the shared router when imported; the order
# matters where paths overlap (/ui/runs/compare before /ui/runs/{run_id}).
from plinth.server.dashboard import (  # noqa: F401
    data,
    governance,
    insight,
    login,
    models,
    ops,
    runs,
)
from plinth.server.dashboard.base import router

__all__ = ["router"]
