"""Fixtures for the launcher tests: a workspace, scripts written on the fly, the CLI in a
subprocess (launchers own signal handlers and child processes, so they run as a user would).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import plinth
from plinth._core.settings import Settings
from plinth.catalog.models import Run as RunRecord
from tests.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "src" / "plinth" / "examples" / "train" / "mlp.py"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "ws", user="tester")


@pytest.fixture
def ws(settings: Settings) -> Iterator[plinth.Workspace]:
    workspace = plinth.Workspace(settings=settings)
    yield workspace
    workspace.close()


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a script from (dedented) source and return its path."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source).lstrip())
        return path

    return write


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "plinth.cli.main", *args]


@pytest.fixture
def plinth_cli(
    settings: Settings, tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``plinth ARGS`` on the test's workspace; returns the completed process."""

    def run(*args: str, timeout: float = 240, env: dict[str, str] | None = None) -> Any:
        return subprocess.run(
            cli_command(*args),
            env={**settings_env(settings), **(env or {})},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def runs(ws: plinth.Workspace) -> list[RunRecord]:
    """Every run in the catalog, oldest first, detached from the session."""
    with ws.catalog.session() as session:
        records = list(session.scalars(select(RunRecord).order_by(RunRecord.started_at)))
        for record in records:
            session.expunge(record)
    return records
