"""Settings resolution: defaults, ``PLINTH_*`` variables, ``plinth.toml`` and arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from plinth._core.settings import Settings, load_settings
from plinth.errors import ConfigError

# tests/conftest.py clears every PLINTH_* setting variable before each test.


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, made the current directory."""
    folder = (tmp_path / "work").resolve()
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(cwd: Path) -> None:
    resolved = load_settings()
    settings = resolved.settings
    home = cwd / ".plinth"
    assert settings.home == home
    assert settings.database_url == ""
    assert settings.storage_url == ""
    assert settings.catalog_url == f"sqlite:///{home / 'catalog.db'}"
    assert settings.storage_root == str(home / "storage")
    assert settings.user
    assert resolved.config_file is None
    assert set(resolved.origins) == set(Settings.model_fields)
    assert set(resolved.origins) >= {"home", "database_url", "storage_url", "user"}
    assert set(resolved.origins.values()) == {"default"}


def test_defaults_do_not_create_anything(cwd: Path) -> None:
    load_settings()
    assert list(cwd.iterdir()) == []


def test_env_home(cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "elsewhere"))
    resolved = load_settings()
    assert resolved.settings.home == (tmp_path / "elsewhere").resolve()
    assert resolved.origins["home"] == "env PLINTH_HOME"
    assert resolved.settings.catalog_url.endswith("elsewhere/catalog.db")
    assert resolved.origins["database_url"] == "default"


def test_relative_env_home_is_resolved_against_cwd(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLINTH_HOME", "rel/ws")
    assert load_settings().settings.home == cwd / "rel" / "ws"


def test_relative_env_storage_is_resolved_against_cwd(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLINTH_STORAGE_URL", "store")
    resolved = load_settings()
    assert resolved.settings.storage_root == str(cwd / "store")
    assert resolved.origins["storage_url"] == "env PLINTH_STORAGE_URL"


TOP_LEVEL = 'home = "ws"\nstorage_url = "store"\nuser = "alice"\n'
TABLE = '[plinth]\nhome = "ws"\nstorage_url = "store"\nuser = "alice"\n\n[other]\nx = 1\n'


@pytest.mark.parametrize("text", [TOP_LEVEL, TABLE], ids=["top-level", "plinth-table"])
@pytest.mark.parametrize("where", ["cwd", "parent"])
def test_config_file(cwd: Path, monkeypatch: pytest.MonkeyPatch, text: str, where: str) -> None:
    config = _write(cwd / "plinth.toml", text)
    if where == "parent":
        below = cwd / "sub" / "deeper"
        below.mkdir(parents=True)
        monkeypatch.chdir(below)
    resolved = load_settings()
    settings = resolved.settings
    # Relative paths are taken relative to the file's folder, not the working directory.
    assert settings.home == cwd / "ws"
    assert settings.storage_root == str(cwd / "store")
    assert settings.user == "alice"
    assert resolved.config_file == config
    assert resolved.origins["home"] == str(config)
    assert resolved.origins["storage_url"] == str(config)
    assert resolved.origins["user"] == str(config)
    assert resolved.origins["database_url"] == "default"


def test_config_file_absolute_and_remote_values(cwd: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    _write(
        cwd / "plinth.toml",
        f'home = "{tmp_path / "abs"}"\ndatabase_url = "{db}"\nstorage_url = "s3://b/p"\n',
    )
    settings = load_settings().settings
    assert settings.home == (tmp_path / "abs").resolve()
    assert settings.catalog_url == db
    assert settings.storage_root == "s3://b/p"


def test_relative_sqlite_path_in_config_file_is_resolved_against_its_folder(
    cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(cwd / "plinth.toml", 'database_url = "sqlite:///db/catalog.db"\n')
    below = cwd / "sub"
    below.mkdir()
    monkeypatch.chdir(below)
    assert load_settings().settings.catalog_url == f"sqlite:///{cwd / 'db' / 'catalog.db'}"


def test_nearest_config_file_wins(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(cwd / "plinth.toml", 'user = "outer"\n')
    inner = _write(cwd / "sub" / "plinth.toml", 'user = "inner"\n')
    monkeypatch.chdir(cwd / "sub")
    resolved = load_settings()
    assert resolved.settings.user == "inner"
    assert resolved.config_file == inner


def test_cwd_argument(cwd: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    _write(other / "plinth.toml", 'user = "from-other"\n')
    resolved = load_settings(cwd=other)
    assert resolved.settings.user == "from-other"
    assert resolved.settings.home == other.resolve() / ".plinth"


def test_env_beats_config_file(cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(cwd / "plinth.toml", 'home = "ws"\nuser = "alice"\n')
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "envhome"))
    monkeypatch.setenv("PLINTH_USER", "bob")
    resolved = load_settings()
    assert resolved.settings.home == (tmp_path / "envhome").resolve()
    assert resolved.settings.user == "bob"
    assert resolved.origins["home"] == "env PLINTH_HOME"
    assert resolved.origins["user"] == "env PLINTH_USER"


def test_values_given_in_code_beat_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A child process handed its parent's settings (the prediction log writer, a pipeline
    # worker) must get exactly those, whatever PLINTH_* variables it inherited.
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "envhome"))
    monkeypatch.setenv("PLINTH_PROFILE_ON_INGEST", "true")
    given = Settings(home=tmp_path / "given", profile_on_ingest=False)
    assert given.home == tmp_path / "given" and given.profile_on_ingest is False
    monkeypatch.setenv("plinth_user", "lower")  # variables match case-insensitively
    assert Settings().user == "lower"


def test_env_in_any_case_beats_config_file(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(cwd / "plinth.toml", 'user = "alice"\n')
    monkeypatch.setenv("plinth_user", "carol")
    assert load_settings().settings.user == "carol"


def test_argument_beats_env_and_file(
    cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(cwd / "plinth.toml", 'home = "ws"\n')
    monkeypatch.setenv("PLINTH_HOME", str(tmp_path / "envhome"))
    resolved = load_settings(home=tmp_path / "arghome")
    assert resolved.settings.home == (tmp_path / "arghome").resolve()
    assert resolved.origins["home"] == "argument"
    assert resolved.settings.catalog_url.endswith("arghome/catalog.db")


def test_relative_home_argument_is_resolved_against_cwd(cwd: Path) -> None:
    resolved = load_settings(home="mine")
    assert resolved.settings.home == cwd / "mine"
    assert resolved.origins["home"] == "argument"


def test_user_env(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_USER", "carol")
    resolved = load_settings()
    assert resolved.settings.user == "carol"
    assert resolved.origins["user"] == "env PLINTH_USER"


def test_database_url_env(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_DATABASE_URL", "postgresql://u:p@db:5432/plinth")
    resolved = load_settings()
    assert resolved.settings.catalog_url == "postgresql://u:p@db:5432/plinth"
    assert resolved.origins["database_url"] == "env PLINTH_DATABASE_URL"


def test_plinth_config_points_at_a_file(
    cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(cwd / "plinth.toml", 'user = "ignored"\n')
    explicit = _write(tmp_path / "conf" / "custom.toml", 'user = "explicit"\nhome = "h"\n')
    monkeypatch.setenv("PLINTH_CONFIG", str(explicit))
    resolved = load_settings()
    assert resolved.settings.user == "explicit"
    assert resolved.settings.home == explicit.resolve().parent / "h"
    assert resolved.config_file == explicit.resolve()


def test_plinth_config_missing_file(
    cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("PLINTH_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="PLINTH_CONFIG"):
        load_settings()


def test_unknown_key_in_config_file(cwd: Path) -> None:
    _write(cwd / "plinth.toml", 'home = "ws"\ncolour = "blue"\n')
    with pytest.raises(ConfigError, match="colour"):
        load_settings()


def test_unknown_key_in_plinth_table(cwd: Path) -> None:
    _write(cwd / "plinth.toml", "[plinth]\nstorag_url = 'x'\n")
    with pytest.raises(ConfigError, match="storag_url"):
        load_settings()


def test_broken_toml(cwd: Path) -> None:
    config = _write(cwd / "plinth.toml", 'home = "ws\n[plinth\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(config) in str(info.value)


def test_plinth_key_that_is_not_a_table(cwd: Path) -> None:
    _write(cwd / "plinth.toml", 'plinth = "x"\n')
    with pytest.raises(ConfigError):
        load_settings()


@pytest.mark.parametrize("text", ["home = 1\n", "storage_url = 5\n", "user = []\n"])
def test_wrongly_typed_values_in_config_file(cwd: Path, text: str) -> None:
    _write(cwd / "plinth.toml", text)
    with pytest.raises(ConfigError):
        load_settings()


@pytest.mark.parametrize("url", ["mysql://x", "nonsense", "sqlite:relative.db"])
def test_bad_database_url_env(cwd: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PLINTH_DATABASE_URL", url)
    with pytest.raises(ConfigError, match="PLINTH_DATABASE_URL"):
        load_settings()


def test_bad_database_url_in_config_file(cwd: Path) -> None:
    _write(cwd / "plinth.toml", 'database_url = "mysql://x"\n')
    with pytest.raises(ConfigError):
        load_settings()


@pytest.mark.parametrize("url", ["ftp://x", "s3://", "http://host/path"])
def test_bad_storage_url_env(cwd: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PLINTH_STORAGE_URL", url)
    with pytest.raises(ConfigError, match="PLINTH_STORAGE_URL"):
        load_settings()


@pytest.mark.parametrize(
    "url", ["s3://bucket", "s3://bucket/prefix", "postgresql://u@h/db", "postgres://u@h/db"]
)
def test_good_urls_are_kept(cwd: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    var = "PLINTH_STORAGE_URL" if url.startswith("s3") else "PLINTH_DATABASE_URL"
    monkeypatch.setenv(var, url)
    settings = load_settings().settings
    assert url in {settings.storage_root, settings.catalog_url}
