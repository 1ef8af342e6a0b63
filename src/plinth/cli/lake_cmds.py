"""Lake commands: ``plinth ingest``, ``plinth tables``, ``plinth table show|history``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.lake import VersionInfo

table_app = typer.Typer(help="Inspect one lake table.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add the lake commands to ``app``."""
    app.command("ingest")(ingest)
    app.command("tables")(tables)
    app.add_typer(table_app, name="table")


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def _parse_types(values: list[str] | None) -> dict[str, str]:
    from plinth.errors import ConfigError

    types: dict[str, str] = {}
    for value in values or []:
        name, sep, type_name = value.partition("=")
        if not sep or not name or not type_name:
            raise ConfigError(f"--type expects COLUMN=TYPE, got '{value}'.")
        types[name.strip()] = type_name.strip()
    return types


def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="File path or glob (CSV, Parquet, JSON; .gz/.zip), or a SQL query with --sql-url."
        ),
    ],
    table: Annotated[str, typer.Option("--table", "-t", help="Lake table to write.")],
    mode: Annotated[
        str, typer.Option("--mode", help="append, overwrite or upsert (by --key).")
    ] = "append",
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Key column(s) for upsert; comma-separated.")
    ] = None,
    timestamp: Annotated[
        str | None, typer.Option("--timestamp", help="Event-time column of the table.")
    ] = None,
    evolve: Annotated[
        bool, typer.Option("--evolve", help="Allow new columns (missing ones become null).")
    ] = False,
    sql_url: Annotated[
        str | None,
        typer.Option("--sql-url", help="SQLAlchemy URL to run SOURCE against as a query."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or json (default: by suffix).")
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Declare a column's type, COLUMN=TYPE (repeatable)."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Ingest a source into a lake table: one Delta commit, one catalog version."""
    from plinth.cli.output import row_progress
    from plinth.workspace import Workspace

    with Workspace(home) as ws, row_progress() as progress:
        task = progress.add_task(f"Ingesting into {table}", rows=0)
        info = ws.lake.ingest(
            source,
            table=table,
            mode=mode,
            key=_split(key) or None,
            timestamp=timestamp,
            evolve=evolve,
            sql_url=sql_url,
            format=fmt,
            types=_parse_types(types),
            progress=lambda rows: progress.update(task, rows=rows),
        )
    _print_version_line(info)


def _print_version_line(info: VersionInfo) -> None:
    from plinth.cli.output import console, human_bytes, styled

    console.print(
        styled(
            (info.ref, "green"),
            f" {info.operation}: {info.rows_added:,} rows in, "
            f"{info.row_count:,} rows in the table ({human_bytes(info.bytes)}).",
        )
    )


def tables(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List lake tables with their latest version, row count and size."""
    from dataclasses import asdict

    from rich.table import Table

    from plinth.cli.output import console, human_bytes, print_json, source_summary, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        infos = client.tables()
    if as_json:
        print_json([asdict(t) for t in infos])
        return
    if not infos:
        console.print("No tables yet. Ingest one with: plinth ingest FILE --table NAME")
        return
    out = Table()
    for column in ("table", "version", "rows", "size", "updated", "source"):
        out.add_column(
            column,
            justify="right" if column in {"version", "rows", "size"} else "left",
            no_wrap=column in {"table", "updated"},
        )
    for info in infos:
        latest = info.latest
        assert latest is not None
        out.add_row(
            info.name,
            str(latest.version),
            f"{latest.row_count:,}",
            human_bytes(latest.bytes),
            when(latest.created_at),
            source_summary(latest.source),
        )
    console.print(out)


@table_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Table name.")],
    version: Annotated[int | None, typer.Option("--version", help="Version to show.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a table's schema, settings and the statistics of one version."""
    from dataclasses import asdict

    from rich.table import Table

    from plinth.cli.output import console, human_bytes, print_json, source_summary, styled, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        info = client.table(name)
        chosen = client.table_version(name, version)
    if as_json:
        print_json({"table": asdict(info), "version": asdict(chosen)})
        return
    console.print(styled((info.name, "bold"), f"  {info.location}"))
    console.print(
        f"versions: {info.version_count} (latest {info.latest.version if info.latest else '-'})"
        f"   key: {', '.join(info.key_columns or []) or '-'}"
        f"   timestamp: {info.timestamp_column or '-'}"
    )
    console.print(
        f"version {chosen.version}: {chosen.row_count:,} rows, {human_bytes(chosen.bytes)} in "
        f"{chosen.num_files} file(s), {chosen.operation} by {chosen.created_by} at "
        f"{when(chosen.created_at)}"
    )
    console.print(f"source: {source_summary(chosen.source)}")
    schema = Table(title="schema")
    schema.add_column("column")
    schema.add_column("type")
    for column in chosen.schema:
        schema.add_row(column["name"], column["type"])
    console.print(schema)


@table_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Table name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every version of a table: operation, rows, size, source, who and when."""
    from dataclasses import asdict

    from rich.table import Table

    from plinth.cli.output import console, human_bytes, print_json, source_summary, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        versions = client.table_versions(name)
    if as_json:
        print_json([asdict(v) for v in versions])
        return
    out = Table(title=f"{name} history")
    for column in ("version", "operation", "rows", "added", "size", "created", "by", "source"):
        out.add_column(column)
    for v in versions:
        row: list[Any] = [
            str(v.version),
            v.operation,
            f"{v.row_count:,}",
            f"{v.rows_added:,}",
            human_bytes(v.bytes),
            when(v.created_at),
            v.created_by,
            source_summary(v.source),
        ]
        out.add_row(*row)
    console.print(out)
