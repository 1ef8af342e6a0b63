"""Shared terminal output helpers: one console, human sizes, JSON output."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

# Markup is off: table names, types like timestamp[us] and paths are printed as they are.
console = Console(highlight=False, markup=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Build a line from plain strings and ``(text, style)`` pairs.

    Example:
        >>> styled(("ok", "green"), " done").plain
        'ok done'
    """
    return Text.assemble(*parts)


def human_bytes(size: int) -> str:
    """Format a byte count for people.

    Example:
        >>> human_bytes(5_644_977)
        '5.4 MiB'
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def when(value: datetime) -> str:
    """Format a UTC timestamp to the second (the CLI shows every time in UTC)."""
    return value.strftime("%Y-%m-%d %H:%M:%S")


def print_header(
    ident: str,
    what: str,
    status: str,
    style: str,
    started_at: datetime,
    ended_at: datetime | None,
    duration: str,
) -> None:
    """Print the two header lines of a run's detail view: id, what and status; timing.

    Example:
        >>> # print_header(run.id, "experiment delay", "finished", "green", t0, t1, "9.2 s")
    """
    console.print(styled((ident, "bold"), f"  {what}, ", (status, style)))
    ended = when(ended_at) if ended_at else "not yet"
    console.print(f"started {when(started_at)} UTC, ended {ended}, duration {duration}")


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (dates as ISO 8601)."""
    print(
        json.dumps(
            data, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)
        )
    )


def source_summary(source: dict[str, Any]) -> str:
    """One-line description of an ingest source descriptor."""
    kind = source.get("kind")
    if kind == "files":
        paths = source.get("paths", [])
        head = Path(paths[0]).name if paths else source.get("pattern", "?")
        more = f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""
        return f"{source.get('format')}: {head}{more}"
    if kind == "sql":
        return f"sql: {source.get('url')}"
    if kind == "memory":
        return f"memory: {source.get('type')}"
    return str(kind)


def row_progress() -> Any:
    """A transient progress display with a spinner, a label and a running row count.

    Tasks take a ``rows`` field: ``progress.add_task("ingest flights", rows=0)``.

    Example:
        >>> with row_progress() as progress:
        ...     task = progress.add_task("ingest", rows=0)
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", style="bold", markup=False),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
