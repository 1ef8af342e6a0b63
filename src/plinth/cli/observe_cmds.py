"""Observability commands: ``plinth quality TABLE`` and ``plinth profile TABLE``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.quality.observability import QualitySummary

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
SHIFT_ROWS = 10


def register(app: typer.Typer) -> None:
    """Add the observability commands to ``app``."""
    app.command("quality")(quality)
    app.command("profile")(profile)


def quality(
    table: Annotated[str, typer.Argument(help="Lake table to report on.")],
    against: Annotated[
        int | None,
        typer.Option("--against", help="Reference version (default: the previous one)."),
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", help="Version to report on (default: latest).")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Show a table's freshness, volume, schema changes and largest distribution shifts."""
    from plinth.cli.output import console, styled
    from plinth.cli.remote import open_client

    with open_client(home) as client:  # computed on the server in remote mode
        summary = client.table_summary(table, version=version, against=against)
    _print_summary(summary)
    if html is not None:
        from plinth.quality.report import write_html

        path = write_html(summary, html)
        console.print(styled(("Report written", "green"), f" to {path}"))


def _print_summary(summary: QualitySummary) -> None:
    from rich.table import Table

    from plinth.cli.output import console, styled, when

    ref = summary.reference_version
    console.print(
        styled(
            (f"{summary.table}@{summary.version}", "bold"),
            f": {summary.row_count:,} rows",
            "" if ref is None else f", compared with version {ref}",
        )
    )
    fresh = summary.freshness
    if fresh is None:
        console.print("freshness: unknown (the table has no timestamp column)")
    elif fresh.newest is None:
        console.print(f"freshness: no rows in version {fresh.version}")
    else:
        console.print(
            f"freshness: newest {fresh.column} is {fresh.newest.isoformat()}, "
            f"{_age(fresh.age.total_seconds() if fresh.age else 0.0)} old"
        )
    volume = Table(title="volume")
    for column in ("version", "rows", "change", "created"):
        volume.add_column(column, justify="left" if column == "created" else "right")
    previous: int | None = None
    for point in summary.volume[-20:]:
        change = "" if previous in (None, 0) else f"{(point.row_count - previous) / previous:+.0%}"
        volume.add_row(str(point.version), f"{point.row_count:,}", change, when(point.created_at))
        previous = point.row_count
    console.print(volume)
    if summary.schema_changes:
        schema = Table(title="schema changes")
        for column in ("versions", "added", "removed", "type changed"):
            schema.add_column(column)
        for change in summary.schema_changes:
            schema.add_row(
                f"{change.from_version} → {change.to_version}",
                ", ".join(f"{c['name']} ({c['type']})" for c in change.added),
                ", ".join(c["name"] for c in change.removed),
                ", ".join(f"{c['name']}: {c['from']} → {c['to']}" for c in change.changed),
            )
        console.print(schema)
    else:
        console.print("schema changes: none")
    if ref is not None:
        _print_shifts(summary)
    recent = [e for e in summary.events if e.subject_id == f"{summary.table}@{summary.version}"]
    for event in recent:
        console.print(styled((event.kind, "yellow"), f": {event.message}"))


def _print_shifts(summary: QualitySummary) -> None:
    from rich.table import Table
    from rich.text import Text

    from plinth.cli.output import console

    shifts = Table(title=f"top shifts, version {summary.reference_version} → {summary.version}")
    for column in ("column", "kind", "PSI", "shift", "nulls", "categories"):
        shifts.add_column(column, justify="right" if column == "PSI" else "left")
    styles = {"significant": "red", "moderate": "yellow", "none": "green"}
    for shift in summary.shifts[:SHIFT_ROWS]:
        psi = "n/a" if shift.psi is None else f"{shift.psi:.3f}"
        notes: list[str] = []
        if not shift.high_cardinality:
            if shift.new_categories:
                notes.append(f"{len(shift.new_categories)} new")
            if shift.missing_categories:
                notes.append(f"{len(shift.missing_categories)} missing")
        style = styles.get(shift.severity, "")
        shifts.add_row(
            shift.column,
            shift.kind,
            psi,
            Text(shift.severity, style=style),
            f"{shift.reference_null_fraction:.1%} → {shift.current_null_fraction:.1%}",
            ", ".join(notes),
        )
    if not summary.shifts:
        console.print("shifts: the versions share no comparable columns")
    else:
        console.print(shifts)


def _age(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} seconds"


def profile(
    table: Annotated[str, typer.Argument(help="Lake table to profile.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Version to profile (default: latest).")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Profile a table version (stored once, then reused) and summarize each column.

    Columns the table's contract marks as personal data show counts only.
    """
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.cli.remote import open_client
    from plinth.quality.privacy import WITHHELD, is_withheld

    with open_client(home) as client:
        chosen = client.table_version(table, version)
        result = client.table_profile(table, chosen.version)
    if as_json:
        print_json(result)
        return
    out = Table(title=f"{table}@{chosen.version}: {result['row_count']:,} rows")
    for column in ("column", "kind", "type", "nulls", "distinct", "min", "max", "mean / top"):
        out.add_column(column, justify="right" if column in {"nulls", "distinct"} else "left")
    for name, col in result["columns"].items():
        withheld = is_withheld(col)
        out.add_row(
            name,
            col["kind"],
            col["type"],
            f"{col['nulls']:,} ({col['null_fraction']:.1%})",
            "-" if col.get("distinct") is None else f"{col['distinct']:,}",
            "-" if withheld else _short(col.get("min")),
            "-" if withheld else _short(col.get("max")),
            WITHHELD if withheld else _centre(col),
        )
    console.print(out)


def _short(value: Any) -> str:

    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 32 else text[:31] + "…"


def _centre(col: dict[str, Any]) -> str:
    if col["kind"] == "numeric":
        mean, std = col.get("mean"), col.get("std")
        if mean is None:
            return "-"
        return f"{mean:.6g}" + ("" if std is None else f" ± {std:.3g}")
    from plinth.quality.drift import is_high_cardinality

    top = col.get("top") or []
    if not top:
        return "-"
    if is_high_cardinality(col):
        return "mostly unique values"
    shown = ", ".join(f"{_short(t['value'])} ({t['count']:,})" for t in top[:3])
    return shown + (" …" if len(top) > 3 or col.get("other_count") else "")
