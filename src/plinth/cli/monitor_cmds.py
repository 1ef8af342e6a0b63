"""Monitoring commands: ``plinth monitor drift``."""

from __future__ import annotations

from typing import Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption

monitor_app = typer.Typer(help="Monitoring of served models: drift.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the monitoring commands to ``app``."""
    app.add_typer(monitor_app, name="monitor")


@monitor_app.command("drift")
def drift(
    uri: Annotated[str, typer.Argument(help="Model URI, e.g. delay@champion.")],
    window: Annotated[
        str, typer.Option("--window", help="30m, 1h, 1d, 30d ... or N rows: 10000rows.")
    ] = "1d",
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="TABLE[@VERSION] (default: the training set)."),
    ] = None,
    reference_where: Annotated[
        str | None,
        typer.Option("--reference-where", help="SQL filter on the reference's rows."),
    ] = None,
    psi: Annotated[float, typer.Option("--psi", help="PSI that counts as drift.")] = 0.2,
    wasserstein: Annotated[
        float, typer.Option("--wasserstein", help="Wasserstein / reference std that counts.")
    ] = 0.1,
    js: Annotated[float, typer.Option("--js", help="Jensen-Shannon distance that counts.")] = 0.1,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Drift of a model's prediction log, window by window, against its reference."""
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.monitoring.drift import Thresholds
    from plinth.monitoring.service import log_drift
    from plinth.workspace import Workspace

    limits = Thresholds(psi=psi, wasserstein=wasserstein, js=js)
    with Workspace(home) as ws:
        windows = log_drift(
            ws,
            uri,
            window=window,
            reference=reference,
            reference_where=reference_where,
            thresholds=limits,
        )
    if as_json:
        print_json([w.to_dict() for w in windows])
        return
    table = Table(title=f"Drift of {uri}'s prediction log ({window} windows)")
    for column in ("window", "rows", "drifted share", "drifted columns (PSI)"):
        table.add_column(column)
    for w in windows:
        start = w.start.strftime("%Y-%m-%d %H:%M") if w.start else "-"
        flagged = ", ".join(f"{c.column} ({c.psi:.2f})" for c in w.report.columns if c.drifted)
        table.add_row(start, f"{w.rows:,}", f"{w.report.share_drifted:.0%}", flagged or "-")
    console.print(table)
