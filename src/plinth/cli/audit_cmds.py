"""Audit log commands: ``plinth audit list|verify|head``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plinth.cli.workspace_cmds import HomeOption
from plinth.errors import ConfigError, PlinthError

if TYPE_CHECKING:
    from plinth.catalog.audit import AuditRecord

audit_app = typer.Typer(
    help="The audit log: list its events, verify its hash chain, export its head.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
#: The fewest characters of details worth a column; a narrower terminal lists no details.
DETAILS_WIDTH = 20


class AuditChainBrokenError(PlinthError):
    """The audit chain failed verification: an event was edited, deleted or reordered."""

    status_code = 409


def register(app: typer.Typer) -> None:
    """Add the audit commands to ``app``."""
    app.add_typer(audit_app, name="audit")


def _short(details: dict[str, Any], width: int) -> str:
    text = json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def _print_events(found: list[AuditRecord]) -> None:
    from rich import box
    from rich.table import Table

    from plinth.cli.output import console, when

    headers = ("seq", "time (UTC)", "actor", "action", "resource")
    rows = [[str(e.seq), when(e.at), e.actor, e.action, e.resource] for e in found]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    # The identifying columns keep their full width; the details get what is left of the line
    # (none on a narrow terminal: --json shows them).
    room = console.width - sum(widths) - 3 * (len(headers) + 1) - 2
    out = Table(box=box.SIMPLE_HEAD)
    for i, header in enumerate(headers):
        out.add_column(header, justify="right" if i == 0 else "left", no_wrap=True)
    if room >= DETAILS_WIDTH:
        out.add_column("details", no_wrap=True)
    for row, event in zip(rows, found, strict=True):
        out.add_row(*row, *([_short(event.details, room)] if room >= DETAILS_WIDTH else []))
    console.print(out)


@audit_app.command("list")
def list_events(
    resource: Annotated[
        str | None,
        typer.Option(
            "--resource",
            "-r",
            help="Only this resource; 'table:flights' also matches 'table:flights@3'.",
        ),
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", "-a", help="Only this action, e.g. model.alias.")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", "-u", help="Only this actor.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Show at most this many, newest first.")
    ] = 50,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List audit events, newest first."""
    from plinth.catalog.audit import events
    from plinth.cli import remote
    from plinth.cli.output import console, print_json
    from plinth.workspace import Workspace

    if remote.enabled():
        with remote.client() as client:
            found = client.audit(resource, limit, action=action, actor=actor)
    else:
        with Workspace(home) as ws:
            found = events(ws, resource=resource, action=action, actor=actor, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    if not found:
        console.print("No audit events match.")
        return
    _print_events(found)


def _read_anchor(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"The anchor file '{path}' does not exist.",
            hint="Export one with 'plinth audit head --output FILE'.",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"The anchor file '{path}' cannot be read as JSON: {exc}.",
            hint="Pass the file 'plinth audit head --output FILE' wrote.",
        ) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("seq"), int)
        or not isinstance(data.get("hash"), str)
    ):
        raise ConfigError(
            f"The anchor file '{path}' has no integer 'seq' and string 'hash'.",
            hint="Pass the file 'plinth audit head --output FILE' wrote.",
        )
    return data


@audit_app.command("verify")
def verify_chain(
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            help="A head exported earlier ('plinth audit head --output FILE'): also catch "
            "deleted newest events.",
        ),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check every event's hashes; exit 1 naming the first edited, deleted or reordered one."""
    from plinth.catalog.audit import verify
    from plinth.cli import remote
    from plinth.cli.output import console, print_json
    from plinth.workspace import Workspace

    anchored = _read_anchor(anchor) if anchor is not None else None
    if remote.enabled():
        if anchored is not None:
            raise ConfigError(
                "'plinth audit verify --anchor' works on a local catalog only; unset PLINTH_URL.",
                hint="Without --anchor the server verifies its chain.",
            )
        with remote.client() as client:
            result = client.audit_verify()
    else:
        with Workspace(home) as ws:
            result = verify(ws, anchor=anchored)
    if as_json:
        print_json(result.to_dict())
        if not result.ok:
            raise typer.Exit(1)
        return
    if not result.ok:
        raise AuditChainBrokenError(
            f"The audit chain does not verify: {result.reason}.",
            hint="Every event after it is unverified: restore the audit_events table from a "
            "backup and find out who changed it.",
        )
    against = f", matches the anchor at event {anchored['seq']}" if anchored else ""
    console.print(
        f"{result.events} events, chain intact{against}, head {result.head}", soft_wrap=True
    )


@audit_app.command("head")
def export_head(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the head to this JSON file instead."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Print (or write) the newest event's seq, hash and time, to keep somewhere else."""
    from plinth._core.files import atomic_writer
    from plinth.catalog.audit import head
    from plinth.cli.output import console, print_json
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        newest = head(ws)
    if output is None:
        print_json(newest)
        return
    with atomic_writer(output) as handle:
        handle.write((json.dumps(newest, indent=2) + "\n").encode())
    console.print(
        f"Wrote the audit head (event {newest['seq']}, {newest['hash']}) to {output}.",
        soft_wrap=True,
    )
