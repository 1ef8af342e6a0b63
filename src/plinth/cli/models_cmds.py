"""Model registry commands: ``plinth models list|show|alias|diff|card|export``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.registry import AliasEvent, ModelVersionInfo

models_app = typer.Typer(
    help="Registered models: list, show, aliases, diff, model cards, export.",
    no_args_is_help=True,
)
alias_app = typer.Typer(
    help="Aliases of a model's versions (champion, challenger ...) and their history.",
    no_args_is_help=True,
)
models_app.add_typer(alias_app, name="alias")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UriArgument = Annotated[
    str,
    typer.Argument(help="Model URI: NAME, NAME:VERSION, NAME@ALIAS, models:/NAME/VERSION ..."),
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why, kept in the alias history.")
]


def register(app: typer.Typer) -> None:
    """Add the model registry commands to ``app``."""
    app.add_typer(models_app, name="models")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@models_app.command("list")
def list_models(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List the registered models with their newest version and aliases."""
    from rich import box
    from rich.table import Table

    from plinth.cli import remote
    from plinth.cli.output import console, print_json, when
    from plinth.workspace import Workspace

    if remote.enabled():
        with remote.client() as client:
            models = client.models()
    else:
        with Workspace(home) as ws:
            models = ws.models.list()
    if as_json:
        print_json([m.to_dict() for m in models])
        return
    if not models:
        console.print("No models yet. Register one with run.log_model(model, name).")
        return
    out = Table(box=box.SIMPLE_HEAD)
    for column in ("name", "versions", "latest", "latest registered (UTC)", "aliases"):
        out.add_column(column, justify="right" if column in ("versions", "latest") else "left")
    for m in models:
        out.add_row(
            m.name,
            str(m.version_count),
            _number(m.latest_version),
            when(m.latest_at) if m.latest_at else "-",
            ", ".join(f"{a}={v}" for a, v in m.aliases.items()) or "-",
        )
    console.print(out)


def _print_version(info: ModelVersionInfo, versions: list[int]) -> None:
    from rich.table import Table

    from plinth.cli.output import console, styled, when

    console.print(styled((info.uri, "bold"), f"  {info.flavor}"))
    if info.aliases:
        console.print(f"aliases: {', '.join(info.aliases)}")
    console.print(f"registered {when(info.created_at)} UTC by {info.created_by}")
    if info.description:
        console.print(f"description: {info.description}")
    for label, value in (
        ("run", info.run_id),
        ("training set", info.training_set_id),
        (
            "features",
            f"{info.feature_service} v{info.feature_service_version}"
            if info.feature_service
            else None,
        ),
        ("code commit", info.code_commit),
        ("manifest", f"sha256:{info.manifest_digest}"),
    ):
        console.print(f"{label}: {value or '-'}")
    if info.signature is not None:
        out = Table(title="signature")
        out.add_column("inputs")
        out.add_column("outputs")
        inputs, outputs = info.signature.describe_inputs(), info.signature.describe_outputs()
        for i in range(max(len(inputs), len(outputs))):
            out.add_row(
                inputs[i] if i < len(inputs) else "", outputs[i] if i < len(outputs) else ""
            )
        console.print(out)
    else:
        console.print("signature: none (inputs are not checked)")
    if info.metrics:
        out = Table(title="metrics")
        out.add_column("key")
        out.add_column("value", justify="right")
        for key, value in sorted(info.metrics.items()):
            out.add_row(key, _number(value))
        console.print(out)
    out = Table(title="files")
    out.add_column("name")
    out.add_column("digest")
    for name, digest in info.files.items():
        out.add_row(name, digest[:16])
    console.print(out)
    console.print(f"versions of {info.name}: {', '.join(str(v) for v in versions)}")


@models_app.command("show")
def show(uri: UriArgument, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Show one model version: provenance, signature, metrics and files."""
    from plinth.cli import remote
    from plinth.cli.output import print_json
    from plinth.workspace import Workspace

    if remote.enabled():
        info, versions = remote.model_and_versions(uri)
    else:
        with Workspace(home) as ws:
            info = ws.models.get(uri)
            versions = [v.version for v in ws.models.versions(info.name)]
    if as_json:
        print_json({**info.to_dict(), "versions": versions})
        return
    _print_version(info, versions)


def _print_event(event: AliasEvent | None, name: str, alias: str) -> None:
    from plinth.cli.output import console

    if event is None:
        console.print(f"Alias '{alias}' of {name} already points at that version; unchanged.")
    elif event.action == "remove":
        console.print(f"Removed alias '{alias}' of {name} (it pointed at version "
                      f"{event.previous_version}).")  # fmt: skip
    elif event.action == "move":
        console.print(f"Moved alias '{alias}' of {name} from version {event.previous_version} "
                      f"to version {event.version}.")  # fmt: skip
    else:
        console.print(f"Set alias '{alias}' of {name} to version {event.version}.")


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. champion.")],
    version: Annotated[int, typer.Argument(help="The version it should point at.")],
    reason: ReasonOption = None,
    home: HomeOption = None,
) -> None:
    """Point an alias at a version (moving it if it points elsewhere)."""
    from plinth.cli import remote
    from plinth.workspace import Workspace

    if remote.enabled():
        with remote.client() as client:
            event = client.set_alias(name, alias, version, reason=reason)
    else:
        with Workspace(home) as ws:
            event = ws.models.set_alias(name, alias, version, reason=reason)
    _print_event(event, name, alias)


@alias_app.command("remove")
def alias_remove(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str, typer.Argument(help="The alias to remove.")],
    reason: ReasonOption = None,
    home: HomeOption = None,
) -> None:
    """Remove an alias; the version it held stays in the history."""
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        event = client.remove_alias(name, alias, reason=reason)
    _print_event(event, name, alias)


@alias_app.command("history")
def alias_history(
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str | None, typer.Argument(help="Only this alias.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every change of a model's aliases, oldest first."""
    from rich import box
    from rich.table import Table

    from plinth.cli.output import console, print_json, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        events = client.alias_history(name, alias)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    if not events:
        console.print(f"No alias of {name} has been set yet.")
        return
    out = Table(box=box.SIMPLE_HEAD)
    for column in ("at (UTC)", "alias", "action", "version", "previous", "by", "reason"):
        out.add_column(column)
    for e in events:
        out.add_row(
            when(e.at), e.alias, e.action, _number(e.version), _number(e.previous_version),
            e.by, e.reason or "-",
        )  # fmt: skip
    console.print(out)


@models_app.command("diff")
def diff(
    first: Annotated[str, typer.Argument(help="The first version's URI.")],
    second: Annotated[str, typer.Argument(help="The second version's URI.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put two versions side by side: parameters, metrics, signature, data, features."""
    from rich.table import Table

    from plinth.cli.output import console, print_json, when
    from plinth.cli.remote import open_client
    from plinth.registry.diff import SECTIONS

    with open_client(home) as client:
        result = client.diff_models(first, second)
    if as_json:
        print_json(result.to_dict())
        return

    def cell(value: Any) -> str:
        if hasattr(value, "isoformat"):
            return when(value)
        return _number(value)

    out = Table(caption="Rows whose values differ are in bold.")
    out.add_column("")
    out.add_column(result.a)
    out.add_column(result.b)
    shown = [s for s in SECTIONS if result.section(s)]
    for section in shown:
        rows = result.section(section)
        for i, row in enumerate(rows):
            out.add_row(
                f"{section}.{row.key}",
                cell(row.a),
                cell(row.b),
                style="bold" if row.differs else None,
                end_section=i == len(rows) - 1 and section != shown[-1],
            )
    console.print(out)


@models_app.command("card")
def card(
    uri: UriArgument,
    as_json: JsonOption = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the card to this file instead of printing."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Print (or write) a version's model card, in Markdown or JSON."""
    import json

    from plinth.cli import remote
    from plinth.cli.output import console
    from plinth.workspace import Workspace

    if remote.enabled():
        info, _ = remote.model_and_versions(uri)
        with remote.client() as client:
            model_card = client.model_card(info.name, info.version)
    else:
        with Workspace(home) as ws:
            model_card = ws.models.card(uri)
    text = json.dumps(model_card.to_dict(), indent=2) + "\n" if as_json else model_card.markdown()
    if output is None:
        print(text, end="")
        return
    from plinth._core.files import atomic_writer

    with atomic_writer(output) as handle:
        handle.write(text.encode("utf-8"))
    console.print(f"Wrote the model card of {model_card.name} version {model_card.version} "
                  f"to {output}.")  # fmt: skip


@models_app.command("export")
def export(
    uri: UriArgument,
    folder: Annotated[Path, typer.Argument(help="Folder to write manifest.json and files to.")],
    home: HomeOption = None,
) -> None:
    """Copy a version's verified files and manifest to a folder."""
    from plinth.cli.output import console
    from plinth.cli.remote import open_client
    from plinth.registry.uri import LATEST, parse_uri

    ref = parse_uri(uri)
    with open_client(home) as client:
        info = client.model_version(ref.name, ref.version or ref.alias or LATEST)
        path = client.export_model(info.name, info.version, folder)
    console.print(f"Exported {info.name} version {info.version} to {path}.")
