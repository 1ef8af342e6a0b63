"""Fixtures for the pipeline tests: an embedded workspace and modules rewritten on the fly."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import plinth
from plinth._core.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "ws", user="tester")


@pytest.fixture
def ws(settings: Settings) -> Iterator[plinth.Workspace]:
    workspace = plinth.Workspace(settings=settings)
    yield workspace
    workspace.close()


@pytest.fixture
def module_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], ModuleType]]:
    """Write (or rewrite) a module from source and import its newest version."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []
    stamp = [1_700_000_000]

    def write(name: str, source: str) -> ModuleType:
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(source).lstrip())
        stamp[0] += 10  # a new mtime each time, so neither .pyc nor linecache is stale
        os.utime(path, (stamp[0], stamp[0]))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        written.append(name)
        return importlib.import_module(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)
