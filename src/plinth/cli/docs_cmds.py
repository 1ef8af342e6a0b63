"""``plinth docs``: write the documentation bundle of a model version (model card, datasheets,
EU AI Act Annex IV technical file, index and changes) as Markdown and HTML."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.governance.docs_bundle import DocsBundle

#: The folder the bundle goes to without --output, under the current directory.
DEFAULT_FOLDER = "model-docs"


def register(app: typer.Typer) -> None:
    """Add the documentation command to ``app``."""
    app.command("docs")(docs_command)


def docs_command(
    uri: Annotated[
        str,
        typer.Argument(
            help="Model URI: NAME, NAME:VERSION, NAME@ALIAS, models:/NAME/VERSION ...",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help=f"Folder to write to (default: {DEFAULT_FOLDER}/NAME-vVERSION).",
            show_default=False,
        ),
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(
            "--answers",
            help="YAML file of the answers only a person can give (annex_iv:, datasheets:).",
            show_default=False,
        ),
    ] = None,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Write a model version's model card, training-data datasheets, Annex IV technical file,
    index and changes against the previous version, as Markdown and HTML."""
    from plinth.cli.output import print_json
    from plinth.governance.docs_bundle import write_docs
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        name, version = ws.models.resolve(uri)
        folder = output if output is not None else Path(DEFAULT_FOLDER) / f"{name}-v{version}"
        bundle = write_docs(ws, f"{name}:{version}", folder, answers=answers)
    if as_json:
        print_json(bundle.to_dict())
        return
    _print_bundle(bundle)


def _print_bundle(bundle: DocsBundle) -> None:
    from plinth.cli.output import console, styled

    console.print(
        styled(
            ("Wrote", "bold"),
            f" the documentation of {bundle.name} version {bundle.version} to {bundle.folder} "
            f"({len(bundle.files)} files):",
        )
    )
    for path in bundle.files:
        console.print(f"  {path.name}")
    counts = bundle.annex_counts()
    console.print(
        styled(
            ("Annex IV: ", "bold"),
            f"{counts['sections']} sections; {counts['filled']} filled from the catalog and tags, "
            f"{counts['needs_human']} need a human answer "
            f"({counts['fields_filled']} of {counts['fields']} fields known).",
        )
    )
    for sheet in bundle.datasheets:
        console.print(
            f"Datasheet of {sheet['ref']}: {sheet['answered']} questions answered from the "
            f"catalog, {sheet['needs_human']} need a human answer."
        )
    if bundle.previous_version is None:
        console.print("CHANGES.md: this is the first version, so there is nothing to compare.")
    else:
        console.print(f"CHANGES.md: compared with version {bundle.previous_version}.")
    if counts["needs_human"]:
        console.print(
            "Answer the open questions in a YAML file passed with --answers (or as tags when "
            "registering a version), then run this command again."
        )
    console.print(f"Open {bundle.folder / 'index.html'} to read it.")
