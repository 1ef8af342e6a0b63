"""Run the inference API on uvicorn: one process, or several workers sharing the port."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError
from plinth.serving.options import ServeOptions

if TYPE_CHECKING:
    from fastapi import FastAPI

    from plinth.workspace import Workspace

#: The environment variable that hands the serve spec to worker processes.
SPEC_ENV = "PLINTH_SERVE_SPEC"


def build_app(ws: Workspace, uris: Sequence[str], options: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app serving ``uris`` from ``ws``; models load when it starts.

    Example:
        >>> # app = build_app(Workspace(), ["delay@champion"])
    """
    from plinth.serving.app import create_app
    from plinth.serving.state import ServingState, targets_of

    state = ServingState(ws, targets_of(uris), options or ServeOptions())
    return create_app(state)


def app_from_env() -> FastAPI:
    """The app a uvicorn worker process builds from ``PLINTH_SERVE_SPEC``.

    Example:
        >>> # uvicorn.run("plinth.serving.server:app_from_env", factory=True, workers=2)
    """
    from plinth.workspace import Workspace

    spec = json.loads(os.environ[SPEC_ENV])
    ws = Workspace(spec.get("home"))
    return build_app(ws, spec["uris"], ServeOptions.from_dict(spec["options"]))


def _check_auth(home: str | None) -> None:
    """Refuse to start with auth off over a shared catalog before any worker process starts."""
    from plinth._core.settings import load_settings
    from plinth.governance.access import require_auth_allowed

    settings = load_settings(home=home).settings
    require_auth_allowed(settings, settings.catalog_url)


def serve(
    uris: Sequence[str],
    *,
    home: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    options: ServeOptions | None = None,
    log_level: str = "warning",
) -> None:
    """Serve ``uris`` until interrupted; SIGTERM or Ctrl-C shut down gracefully.

    Graceful shutdown stops accepting connections, answers what is in flight and queued,
    and flushes the prediction log before the process exits. With ``PLINTH_AUTH`` off over a
    shared (non-SQLite) catalog it refuses to start; each server logs at start whether
    authentication is on (docs/security.md).

    Example:
        >>> # serve(["delay@champion"], port=8080, workers=2)
    """
    import uvicorn

    from plinth.serving.state import targets_of

    targets_of(uris)  # fail on a malformed URI before any process starts
    _check_auth(home)
    if workers < 1:
        raise ConfigError(f"--workers {workers} is not a positive number.", hint="Use 1 or more.")
    options = options or ServeOptions()
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "server_header": False,
    }
    if workers == 1:
        from plinth.workspace import Workspace

        ws = Workspace(home)
        try:
            uvicorn.run(build_app(ws, uris, options), **common)
        finally:
            ws.close()
        return
    # Workers share one listening socket: a worker must not accept before its models are in
    # (it would answer 503 while the others are ready), so each loads during its startup,
    # before uvicorn lets it accept connections.
    options = replace(options, background_load=False)
    metrics_dir = tempfile.mkdtemp(prefix="plinth-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[SPEC_ENV] = json.dumps(
        {"home": home, "uris": list(uris), "options": options.to_dict()}
    )
    uvicorn.run("plinth.serving.server:app_from_env", factory=True, workers=workers, **common)
