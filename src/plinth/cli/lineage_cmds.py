"""``plinth lineage OBJECT``: where an object came from, or what was made from it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption


def register(app: typer.Typer) -> None:
    """Add the lineage command to ``app``."""
    app.command("lineage")(lineage)


def lineage(
    obj: Annotated[
        str,
        typer.Argument(
            metavar="OBJECT",
            help="delay@champion, delay:1, flights@0, training_set:ts_..., run:run_..., "
            "pipeline_run:pr_..., deployment:NAME, alert:ID, file:SHA256 ... "
            "(see docs/lineage.md).",
        ),
    ],
    up: Annotated[
        bool, typer.Option("--up", help="Its inputs, back to the sources (default).")
    ] = False,
    down: Annotated[bool, typer.Option("--down", help="What was made from it.")] = False,
    both: Annotated[bool, typer.Option("--both", help="Inputs and outputs.")] = False,
    depth: Annotated[
        int | None,
        typer.Option("--depth", min=0, help="At most this many hops from OBJECT (default: all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph as JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the graph as an HTML page with an SVG drawing."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Show the lineage of OBJECT as a tree: by default its inputs (--up), back to the source
    files; --down for what was made from it (models, deployments, alerts, retraining)."""
    from plinth.cli.output import console, print_json
    from plinth.errors import ConfigError
    from plinth.governance.lineage import lineage as walk
    from plinth.workspace import Workspace

    chosen = [name for name, on in (("up", up), ("down", down), ("both", both)) if on]
    if len(chosen) > 1:
        raise ConfigError(
            f"Choose one direction, not {' and '.join('--' + c for c in chosen)}.",
            hint="Use --up (inputs), --down (outputs) or --both.",
        )
    from plinth.cli import remote

    if remote.enabled():
        with remote.client() as client:
            graph = client.lineage(obj, chosen[0] if chosen else "up", depth)
    else:
        with Workspace(home) as ws:
            graph = walk(ws, obj, chosen[0] if chosen else "up", depth)
    if html is not None:
        from plinth.governance.lineage_html import write_html

        write_html(graph, html)
    if as_json:
        print_json(graph.to_dict())
        return
    console.print(graph.render_tree())
    if html is not None:
        nodes, edges = len(graph.nodes), len(graph.edges)
        console.print(f"Wrote {html} ({nodes} nodes, {edges} edges).", soft_wrap=True)
