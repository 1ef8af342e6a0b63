"""The control-plane server command: ``plinth server``."""

from __future__ import annotations

from typing import Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("server")(server)


def server(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "warning",
    home: HomeOption = None,
) -> None:
    """Serve the control-plane REST API and dashboard over the catalog (docs at /docs)."""
    from plinth.cli.output import console
    from plinth.server.serve import serve

    serve(
        str(home) if home else None,
        host=host,
        port=port,
        log_level=log_level,
        echo=lambda line: console.print(line, highlight=False),
    )
