"""Docs stay true to the code: every command and every setting is documented."""

from __future__ import annotations

from pathlib import Path

import typer

from plinth._core.settings import Settings
from plinth.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def _commands(typer_app: typer.Typer, prefix: str = "plinth") -> list[str]:
    command = typer.main.get_command(typer_app)
    found: list[str] = []

    def visit(cmd, path: str) -> None:  # type: ignore[no-untyped-def]
        subcommands = getattr(cmd, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                visit(sub, f"{path} {name}")
        else:
            found.append(path)

    visit(command, prefix)
    return found


def test_every_command_is_in_the_cli_docs():
    text = (ROOT / "docs" / "cli.md").read_text()
    commands = _commands(app)
    assert "plinth ingest" in commands and "plinth table history" in commands
    missing = [c for c in commands if f"`{c}" not in text and f"{c} " not in text]
    assert not missing, f"undocumented commands: {missing}"


def test_every_setting_is_in_the_configuration_docs():
    text = (ROOT / "docs" / "configuration.md").read_text()
    names = [f"PLINTH_{n.upper()}" for n in Settings.model_fields] + ["PLINTH_CONFIG"]
    missing = [n for n in names if n not in text]
    assert not missing, f"undocumented settings: {missing}"


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert "make quickstart" in first_block and "make test" in first_block


def test_benchmarks_page_exists_with_lake_figures():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "benchmarks/lake.py" in text
