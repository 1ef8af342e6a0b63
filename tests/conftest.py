"""Shared pytest configuration: service fixtures, clean settings, workspaces per backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth._core.settings import Settings

pytest_plugins = ["tests.services"]

SETTING_VARS = (*(f"PLINTH_{name.upper()}" for name in Settings.model_fields), "PLINTH_CONFIG")


@pytest.fixture(autouse=True)
def _clean_plinth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own PLINTH_* settings out of every test."""
    for name in SETTING_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(
    params=[
        pytest.param("embedded", id="sqlite+local"),
        pytest.param("scaleout", id="postgres+s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
    ]
)
def ws_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Workspace settings on each backend pair: embedded default, and PostgreSQL + S3."""
    home = tmp_path / "ws"
    if request.param == "embedded":
        return Settings(home=home, user="tester")
    return Settings(
        home=home,
        user="tester",
        database_url=request.getfixturevalue("postgres_db_url"),
        storage_url=request.getfixturevalue("s3_bucket_url"),
    )


@pytest.fixture
def workspace(ws_settings: Settings) -> Iterator[object]:
    """An open workspace on the parametrized backends."""
    from plinth.workspace import Workspace

    ws = Workspace(settings=ws_settings)
    yield ws
    ws.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for a subprocess that must open the same workspace."""
    env = dict(os.environ)
    env["PLINTH_HOME"] = str(settings.home)
    env["PLINTH_USER"] = settings.user
    if settings.database_url:
        env["PLINTH_DATABASE_URL"] = settings.database_url
    if settings.storage_url:
        env["PLINTH_STORAGE_URL"] = settings.storage_url
    return env
