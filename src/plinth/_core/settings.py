"""Typed settings, resolved from ``PLINTH_*`` environment variables, then ``plinth.toml``, then
defaults, with a record of where each value came from.

Settings are loaded when a workspace is opened, never at import time.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from plinth.errors import ConfigError

CONFIG_FILE = "plinth.toml"


class Settings(BaseSettings):
    """Every setting Plinth reads, with its environment variable and default.

    Example:
        >>> s = Settings(home="/tmp/ws")
        >>> s.catalog_url.startswith("sqlite:///")
        True
    """

    model_config = SettingsConfigDict(env_prefix="PLINTH_", extra="forbid", frozen=True)

    home: Path = Field(
        default=Path(".plinth"),
        description="Workspace folder: the embedded catalog, storage and local state.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the catalog; empty means SQLite at HOME/catalog.db.",
    )
    storage_url: str = Field(
        default="",
        description="Root of the lake and artifact store: a local path or s3://bucket/prefix; "
        "empty means HOME/storage.",
    )
    online_url: str = Field(
        default="",
        description="Online feature store: sqlite:///path or redis://host:port/db; empty means "
        "SQLite at HOME/online.db.",
    )
    contracts_dir: str = Field(
        default="contracts",
        description="Folder of <table>.yaml data contracts, relative to the project (the folder "
        "of plinth.toml, else the current folder); applied automatically on ingest.",
    )
    profile_on_ingest: bool = Field(
        default=True,
        description="Store a profile of every new table version as part of the ingest; when "
        "off, profiles are computed on first use (plinth profile, plinth quality).",
    )
    pipeline: str = Field(
        default="",
        description="The project's pipeline for 'plinth ci', as module:function or "
        "path/to/file.py:function.",
    )
    user: str = Field(
        default_factory=lambda: _default_user(),
        description="Name recorded as the actor of every change (created_by).",
    )
    project: str = Field(
        default="default",
        description="The project roles are granted in and costs and budgets are counted for.",
    )
    auth: bool = Field(
        default=False,
        description="Require a token (plt_... or an OIDC bearer token) on the inference and "
        "control-plane APIs. May be off only with the embedded default catalog; servers say "
        "so when they start.",
    )
    oidc_issuer: str = Field(
        default="",
        description="Accepted OIDC issuer (iss) of bearer JWTs; empty disables OIDC tokens.",
    )
    oidc_audience: str = Field(default="", description="Required audience (aud) of OIDC JWTs.")
    oidc_jwks_url: str = Field(
        default="",
        description="Where the issuer's signing keys (JWKS) are fetched from: https://... or a "
        "local file path.",
    )
    rate_limit: float = Field(
        default=0.0,
        description="Requests per second allowed per token on the HTTP APIs (0: no limit); "
        "beyond it callers get 429 with Retry-After.",
    )
    openlineage_url: str = Field(
        default="",
        description="Where OpenLineage run events go: an http(s):// endpoint or a file path "
        "(one JSON event per line); empty: not emitted.",
    )
    encryption_key: str = Field(
        default="",
        description="Base64 256-bit key: encrypt artifacts at rest (AES-GCM). Empty: no "
        "encryption unless encryption_key_file is set.",
    )
    encryption_key_file: str = Field(
        default="",
        description="File holding the base64 encryption key (instead of encryption_key).",
    )
    prices: dict[str, float] = Field(
        default_factory=dict,
        description="Overrides of the default price table in USD, e.g. {cpu_core_hour = 0.04} "
        "(see docs/cost.md for the keys).",
    )
    url: str = Field(
        default="",
        description="Control-plane server to work through (remote mode), e.g. "
        "http://plinth.internal:8000; empty: use the local catalog.",
    )
    token: str = Field(
        default="",
        description="API token (plt_...) sent to the control-plane server in remote mode. "
        "Never printed.",
    )
    budgets: dict[str, float] = Field(
        default_factory=dict,
        description="Monthly budget in USD per project; alerts at 80% and 100%.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values passed in beat the environment, so Settings(home=...) in code means that
        # home. plinth.toml loses to the environment because load_settings leaves out the
        # file's values that a PLINTH_* variable sets (no .env files, no secrets folder).
        return (init_settings, env_settings)

    @property
    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL, with the embedded default filled in."""
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def online_store_url(self) -> str:
        """The online store's URL, with the embedded default filled in."""
        return self.online_url or f"sqlite:///{self.home / 'online.db'}"

    @property
    def storage_root(self) -> str:
        """The storage root, with the embedded default filled in."""
        return self.storage_url or str(self.home / "storage")


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings plus where each came from (``env PLINTH_X``, ``plinth.toml``, ``default``)."""

    settings: Settings
    origins: Mapping[str, str]
    config_file: Path | None


def find_config_file(start: Path) -> Path | None:
    """Return the nearest ``plinth.toml`` at or above ``start``, or ``None``.

    Example:
        >>> find_config_file(Path("/")) is None or True
        True
    """
    explicit = os.environ.get("PLINTH_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"PLINTH_CONFIG points at '{path}', which is not a file.",
                hint="Set PLINTH_CONFIG to an existing plinth.toml or unset it.",
            )
        return path.resolve()
    for folder in [start, *start.parents]:
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def _check_config_value(path: Path, name: str, value: Any) -> None:
    """A plinth.toml value must have its setting's type: string, boolean, number or a table
    of numbers."""
    annotation = Settings.model_fields[name].annotation
    number = (int, float)
    if annotation is bool:
        ok, kind, example = isinstance(value, bool), "boolean", f"{name} = true"
    elif annotation is float:
        ok = isinstance(value, number) and not isinstance(value, bool)
        kind, example = "number", f"{name} = 10"
    elif annotation == dict[str, float]:
        ok = isinstance(value, dict) and all(
            isinstance(v, number) and not isinstance(v, bool) for v in value.values()
        )
        kind, example = "table of numbers", f"[{name}]\nkey = 0.05"
    else:
        ok, kind, example = isinstance(value, str), "string", f'{name} = "{value}"'
    if not ok:
        raise ConfigError(
            f"'{path}': setting '{name}' must be a {kind}, not {type(value).__name__}.",
            hint=f"Write it like: {example}.",
        )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"Cannot read the configuration file '{path}': {exc}.",
            hint="Fix the TOML syntax or remove the file.",
        ) from exc
    values = data.get("plinth", data)
    if not isinstance(values, dict):
        raise ConfigError(f"'{path}' must hold a [plinth] table of settings.")
    known = set(Settings.model_fields)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"'{path}' has unknown setting(s): {', '.join(unknown)}.",
            hint=f"Known settings are: {', '.join(sorted(known))}.",
        )
    for name, value in values.items():
        _check_config_value(path, name, value)
    if "home" in values:
        values["home"] = str((path.parent / Path(values["home"]).expanduser()).resolve())
    storage = values.get("storage_url")
    if storage and "://" not in storage:
        values["storage_url"] = str((path.parent / Path(storage).expanduser()).resolve())
    database = values.get("database_url", "")
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        relative = database[len("sqlite:///") :]
        if relative and relative != ":memory:":
            values["database_url"] = f"sqlite:///{(path.parent / relative).resolve()}"
    return values


def load_settings(home: str | Path | None = None, cwd: Path | None = None) -> ResolvedSettings:
    """Resolve the settings for a workspace: argument, environment, ``plinth.toml``, default.

    Example:
        >>> resolved = load_settings(home="/tmp/ws")
        >>> resolved.origins["home"]
        'argument'
    """
    cwd = (cwd or Path.cwd()).resolve()
    config_file = find_config_file(cwd)
    file_values = _read_config(config_file) if config_file else {}
    in_env = {name.upper() for name in os.environ}
    try:
        settings = Settings(
            **{k: v for k, v in file_values.items() if f"PLINTH_{k.upper()}" not in in_env}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"Invalid settings: {problems}.",
            hint="Check the PLINTH_* environment variables and plinth.toml.",
        ) from exc
    origins: dict[str, str] = {}
    for name in Settings.model_fields:
        env_name = f"PLINTH_{name.upper()}"
        if env_name in os.environ:
            origins[name] = f"env {env_name}"
        elif name in file_values:
            origins[name] = str(config_file)
        else:
            origins[name] = "default"
    updates: dict[str, Any] = {}
    if home is not None:
        updates["home"] = Path(home)
        origins["home"] = "argument"
    resolved_home = Path(updates.get("home", settings.home)).expanduser()
    if not resolved_home.is_absolute():
        resolved_home = cwd / resolved_home
    updates["home"] = resolved_home.resolve()
    storage = settings.storage_url
    if storage and "://" not in storage and not Path(storage).is_absolute():
        updates["storage_url"] = str((cwd / storage).resolve())
    settings = settings.model_copy(update=updates)
    _validate_urls(settings)
    return ResolvedSettings(settings=settings, origins=origins, config_file=config_file)


def _validate_urls(settings: Settings) -> None:
    from urllib.parse import urlsplit

    if settings.database_url:
        scheme = settings.database_url.split(":", 1)[0].split("+", 1)[0]
        if "://" not in settings.database_url or scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ConfigError(
                f"PLINTH_DATABASE_URL '{settings.database_url}' is not a supported catalog URL.",
                hint="Use sqlite:///path/to/catalog.db or postgresql://user:pass@host:5432/db.",
            )
    storage = settings.storage_url
    if storage and "://" in storage:
        parts = urlsplit(storage)
        if parts.scheme not in {"s3", "file"}:
            raise ConfigError(
                f"PLINTH_STORAGE_URL '{storage}' has unsupported scheme '{parts.scheme}'.",
                hint="Use a local path, file:///path or s3://bucket/prefix.",
            )
        if parts.scheme == "s3" and not parts.netloc:
            raise ConfigError(
                f"PLINTH_STORAGE_URL '{storage}' names no bucket.",
                hint="Use s3://bucket/prefix.",
            )
