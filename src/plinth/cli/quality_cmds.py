"""Quality commands: ``plinth contract``, ``plinth check``, ``plinth quarantine``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption

contract_app = typer.Typer(help="Data contracts: apply, list and show.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Rows that failed a contract: show, release or purge.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
IngestOption = Annotated[
    str | None, typer.Option("--ingest", help="Only the rows of this ingest id.")
]


def register(app: typer.Typer) -> None:
    """Add the quality commands to ``app``."""
    app.add_typer(contract_app, name="contract")
    app.add_typer(quarantine_app, name="quarantine")
    app.command("check")(check)


@contract_app.command("apply")
def apply(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Contract files (default: every contracts/*.yaml).", show_default=False
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Validate contracts and record a new version of each one that changed."""
    from plinth._core.settings import load_settings
    from plinth.cli.output import console, styled
    from plinth.cli.remote import open_client
    from plinth.errors import ContractError
    from plinth.quality.service import contracts_folder

    files = list(paths or [])
    if not files:
        # The project's folder on this machine, in remote mode too: the files are read here.
        folder = contracts_folder(load_settings(home))
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise ContractError(
                f"No contract files in '{folder}'.",
                hint="Write contracts/<table>.yaml or pass the files to apply.",
            )
    with open_client(home) as client:
        for path in files:
            applied = client.apply_contract(path)
            state = ("applied", "green") if applied.changed else ("unchanged", "dim")
            console.print(
                styled(f"{applied.table}: contract v{applied.version} ", state, f"  ({path})")
            )


@contract_app.command("list")
def list_contracts(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List the tables with a contract and the contract's latest version."""
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        found = client.contracts()
    if as_json:
        print_json([{"table": c.table, "version": c.version, "origin": c.origin} for c in found])
        return
    out = Table()
    for column in ("table", "version", "row checks", "origin"):
        out.add_column(column)
    for c in found:
        out.add_row(c.table, str(c.version), str(len(c.contract.row_checks())), c.origin or "-")
    console.print(out)


@contract_app.command("show")
def show_contract(
    table: Annotated[str, typer.Argument(help="Table name.")],
    version: Annotated[int | None, typer.Option("--version", help="Contract version.")] = None,
    home: HomeOption = None,
) -> None:
    """Print a table's contract as YAML."""
    import yaml

    from plinth.cli.output import console
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        applied = client.contract(table, version)
    console.print(f"# {table}: contract v{applied.version}")
    console.print(yaml.safe_dump(applied.contract.spec(), sort_keys=False).rstrip())


def check(
    table: Annotated[str, typer.Argument(help="Table name.")],
    version: Annotated[int | None, typer.Option("--version", help="Table version.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-run the table's contract on a stored version; exit 1 if an error check fails."""
    from rich.table import Table

    from plinth.cli.output import console, print_json, styled
    from plinth.errors import ContractViolationError
    from plinth.quality.check import check_version
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        report = check_version(ws.quality, table, version)
    if as_json:
        print_json(report.as_dict())
    else:
        color = {"passed": "green", "warned": "yellow", "failed": "red"}[report.status]
        console.print(
            styled(
                f"{table}@{report.version} against contract v{report.contract_version}: ",
                (report.status, f"bold {color}"),
                f"  ({report.rows_checked:,} rows, {report.rows_failed:,} failing, "
                f"{report.rows_warned:,} with warnings only)",
            )
        )
        out = Table()
        for column in ("check", "kind", "result"):
            out.add_column(column)
        for name, count in sorted(report.failures.items()):
            out.add_row(name, "rows", f"{count:,} rows fail")
        for c in report.table_checks:
            out.add_row(
                c.name, f"table ({c.severity})", ("ok: " if c.passed else "FAIL: ") + c.message
            )
        if out.row_count:
            console.print(out)
    if report.status == "failed":
        raise ContractViolationError(
            f"Table '{table}' version {report.version} fails its contract.",
            hint="See the failing checks above; fix the data or the contract.",
        )


@quarantine_app.command("show")
def quarantine_show(
    table: Annotated[str, typer.Argument(help="Table name.")],
    ingest: IngestOption = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to print.")] = 20,
    reveal: Annotated[
        bool,
        typer.Option(
            "--reveal",
            help="Show the raw values of personal-data (pii) columns; needs a role that may "
            "release quarantine, and is audited.",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show quarantined rows with the checks they failed (personal data masked)."""
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        view = ws.quality.view_quarantined(table, ingest, limit=limit, reveal=reveal)
    records = view.rows.to_pylist()
    if as_json:
        masked = {} if view.revealed else view.masked
        print_json({"total": view.total, "rows": records, "masked": masked})
        return
    console.print(f"{view.total:,} quarantined row(s) for '{table}'.")
    if view.masked:
        names = ", ".join(f"{n} ({a})" for n, a in sorted(view.masked.items()))
        console.print(
            f"Personal data revealed (audited): {names}."
            if view.revealed
            else f"Personal data masked: {names}. Add --reveal to see the values."
        )
    if not records:
        return
    out = Table()
    columns = list(records[0])
    for column in columns:
        out.add_column(column.removeprefix("_plinth_"))
    for record in records:
        out.add_row(*[_cell(record[c]) for c in columns])
    console.print(out)


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


@quarantine_app.command("release")
def quarantine_release(
    table: Annotated[str, typer.Argument(help="Table name.")],
    ingest: IngestOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Commit the rows without checking them again.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Re-ingest quarantined rows through the current contract; passing rows are committed."""
    from plinth.cli.output import console
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        result = ws.quality.release(table, ingest, force=force)
    if result.table_version is None:
        console.print(f"No quarantined rows for '{table}'.")
        return
    console.print(
        f"Released {result.released:,} row(s) into {table}@{result.table_version}; "
        f"{result.still_failing:,} still fail and stay in quarantine."
    )


@quarantine_app.command("purge")
def quarantine_purge(
    table: Annotated[str, typer.Argument(help="Table name.")],
    ingest: IngestOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    home: HomeOption = None,
) -> None:
    """Delete quarantined rows (earlier quarantine versions still hold them)."""
    from plinth.cli.output import console
    from plinth.workspace import Workspace

    if not yes:
        typer.confirm(f"Delete the quarantined rows of '{table}'?", abort=True)
    with Workspace(home) as ws:
        count = ws.quality.purge(table, ingest)
    console.print(f"Purged {count:,} quarantined row(s) of '{table}'.")
