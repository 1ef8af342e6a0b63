"""Feature store commands: ``plinth features apply|list|show|materialize|skew``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption

features_app = typer.Typer(
    help="Feature store: definitions, materialization, skew.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add the feature store commands to ``app``."""
    app.add_typer(features_app, name="features")


def _parse_time(value: str | None) -> datetime | None:
    from plinth.errors import ConfigError

    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(
            f"'{value}' is not a date or time.", hint="Use ISO 8601, e.g. 2013-06-01T00:00:00Z."
        ) from exc


@features_app.command("apply")
def apply(
    path: Annotated[Path, typer.Argument(help="Python file declaring the definitions.")] = Path(
        "features.py"
    ),
    home: HomeOption = None,
) -> None:
    """Lint the definitions in a Python file and record new versions of what changed."""
    from plinth.cli.output import console, styled
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        changes = client.apply_features(path)
    colors = {"created": "green", "changed": "yellow", "unchanged": "dim"}
    for change in changes:
        console.print(
            styled(
                f"{change.kind} {change.name}: v{change.version} ",
                (change.status, colors[change.status]),
            )
        )


@features_app.command("list")
def list_definitions(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List the applied entities, feature views and services."""
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        found = client.feature_definitions()
    if as_json:
        print_json([{"kind": k, "version": v, **d.spec()} for k, d, v in found])
        return
    out = Table()
    for column in ("kind", "name", "version", "details"):
        out.add_column(column)
    for kind, definition, version in found:
        spec = definition.spec()
        if kind == "entity":
            details = f"keys: {', '.join(spec['join_keys'])}"
        elif kind == "view":
            details = (
                f"{spec['source']} by {', '.join(spec['join_keys'])}, "
                f"{len(spec['features'])} features, ttl {spec['ttl'] or '-'}"
            )
        else:
            details = ", ".join(spec["features"])
        out.add_row(kind, definition.name, str(version), details)
    console.print(out)


@features_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Feature view name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a feature view: source, keys, timestamp, TTL, features and materialization."""
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        info = client.feature_view(name)
    spec, version, watermark = info.spec, info.version, info.watermark
    if as_json:
        print_json({"version": version, "watermark": watermark, **spec})
        return
    console.print(
        f"feature view {name} v{version}: source {spec['source']}, keys "
        f"{', '.join(spec['join_keys'])}, timestamp {spec['timestamp'] or '- (static)'}"
        f", ttl {spec['ttl'] or '-'}"
    )
    console.print(f"materialized up to: {watermark.isoformat() if watermark else 'never'}")
    out = Table()
    out.add_column("feature")
    out.add_column("expression")
    for feature, expression in spec["features"].items():
        out.add_row(feature, expression)
    console.print(out)


@features_app.command("materialize")
def materialize(
    view: Annotated[str | None, typer.Argument(help="Feature view (default: all).")] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="From this time (default: the watermark).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Up to this time (default: now).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write each entity's latest feature values to the online store (incremental)."""
    from plinth.cli.output import console
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        names = [view] if view else sorted(ws.features.views())
        for name in names:
            result = ws.features.materialize(name, start=_parse_time(start), end=_parse_time(end))
            since = result.start.isoformat() if result.start else "the beginning"
            console.print(
                f"{name}: {result.rows:,} entities written (from {since} to "
                f"{result.end.isoformat()}, {ws.features.view(name)[0].source}@"
                f"{result.table_version})"
            )


@features_app.command("skew")
def skew(
    view: Annotated[str, typer.Argument(help="Feature view.")],
    sample: Annotated[int, typer.Option("--sample", help="Entities to compare.")] = 1000,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare online values with point-in-time values; exit 1 on any mismatch."""
    from plinth.cli.output import console, print_json
    from plinth.errors import PlinthError
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        report = ws.features.skew(view, sample=sample)
    if as_json:
        print_json({"view": view, "checked": report.checked, "mismatches": report.mismatches})
    else:
        console.print(
            f"{view}: {report.checked:,} entities compared, {len(report.mismatches):,} mismatches"
        )
        for item in report.mismatches[:20]:
            console.print(f"  {item}")
    if report.mismatches:
        raise PlinthError(
            f"Feature view '{view}' has {len(report.mismatches)} online/offline mismatches.",
            hint="Run 'plinth features materialize' for the view, then check again.",
        )
