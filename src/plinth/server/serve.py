"""Run the control-plane server with uvicorn (``plinth server``).

It prints whether authentication is on, refuses to start with authentication off and a
shared catalog, and shuts down gracefully on SIGINT or SIGTERM: uvicorn stops taking
connections, finishes the requests in flight, and the workspace is closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plinth.errors import ConfigError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve(
    home: str | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "warning",
    echo: Callable[[str], Any] = print,
) -> None:
    """Serve the control-plane API (and the dashboard) for the workspace at ``home``.

    Example:
        >>> # serve(".plinth", host="0.0.0.0", port=8000)
    """
    import uvicorn

    from plinth.governance.access import auth_status, require_auth_allowed
    from plinth.server.app import create_app
    from plinth.workspace import Workspace

    if not 0 < port < 65536:
        raise ConfigError(f"Port {port} is not between 1 and 65535.", hint="Use --port 8000.")
    ws = Workspace(home)
    try:
        require_auth_allowed(ws.settings, ws.settings.catalog_url)
        app = create_app(ws)
        base = f"http://{host}:{port}"
        echo(f"Plinth control plane on {base} (API {base}/api/v1, docs {base}/docs).")
        echo(auth_status(ws.settings))
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30
        )
        uvicorn.Server(config).run()
    finally:
        ws.close()
