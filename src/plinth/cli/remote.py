"""Remote mode of the CLI: with ``PLINTH_URL`` set, commands work through the server.

:func:`enabled` says whether remote mode is on; :func:`client` opens the
:class:`~plinth.client.RemoteClient` a command delegates to. :func:`check_command` runs
before every command: one that has no remote form exits 1 naming itself, instead of quietly
reading a local catalog the user did not mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from plinth.client import PlinthClient, RemoteClient
    from plinth.registry import ModelVersionInfo
    from plinth.tracking.service import RunSummary

__all__ = [
    "REMOTE_COMMANDS",
    "check_command",
    "client",
    "enabled",
    "list_runs",
    "model_and_versions",
    "open_client",
]

#: The commands that work through the server when PLINTH_URL is set.
REMOTE_COMMANDS = frozenset(
    {
        ("runs", "list"),
        ("runs", "show"),
        ("models", "list"),
        ("models", "show"),
        ("models", "alias", "set"),
        ("models", "alias", "remove"),
        ("models", "alias", "history"),
        ("models", "diff"),
        ("models", "export"),
        ("models", "card"),
        ("runs", "compare"),
        ("runs", "plot"),
        ("tables",),
        ("table", "show"),
        ("table", "history"),
        ("profile",),
        ("features", "show"),
        ("pipeline", "runs"),
        ("pipeline", "show"),
        ("deploy", "list"),
        ("deploy", "history"),
        ("monitor", "drift"),
        ("monitor", "alert"),
        ("monitor", "alerts"),
        ("audit", "list"),
        ("audit", "verify"),
        ("lineage",),
        ("train",),
        ("cost",),
        ("quality",),
        ("features", "list"),
        ("pipeline", "logs"),
        ("tune",),
        # definitions: data contracts and feature definitions
        ("contract", "apply"),
        ("contract", "list"),
        ("contract", "show"),
        ("features", "apply"),
        # administration and cost reports
        ("token", "create"),
        ("token", "list"),
        ("token", "revoke"),
        ("role", "grant"),
        ("role", "revoke"),
        ("role", "list"),
        ("cost", "waste"),
        ("cost", "prices"),
        ("cost", "budget"),
    }
)


def _url() -> str:
    from plinth._core.settings import load_settings

    return load_settings().settings.url


def enabled() -> bool:
    """Whether remote mode is on: ``PLINTH_URL`` (or ``url`` in plinth.toml) is set.

    Example:
        >>> import os
        >>> enabled() == bool(os.environ.get("PLINTH_URL"))  # doctest: +SKIP
        True
    """
    return bool(_url())


def client() -> RemoteClient:
    """The client of the server ``PLINTH_URL`` names, with ``PLINTH_TOKEN``.

    Example:
        >>> # with client() as remote: remote.models()
    """
    from plinth._core.settings import load_settings
    from plinth.client import RemoteClient

    settings = load_settings().settings
    return RemoteClient(settings.url, settings.token or None)


def open_client(home: Path | None = None) -> PlinthClient:
    """The client a command reads through: the server in remote mode, else the workspace at
    ``home`` (closed with the client).

    Example:
        >>> # with open_client(home) as client: client.tables()
    """
    from plinth.client import LocalClient
    from plinth.workspace import Workspace

    if enabled():
        return client()
    return LocalClient(Workspace(home), own=True)


def _command_path(command: Any, args: Sequence[str]) -> tuple[str, ...]:
    """The names of the (sub)commands ``args`` invoke, outermost first."""
    path: list[str] = []
    group = command
    for arg in args:
        commands = getattr(group, "commands", None)
        if commands is None:
            break
        if arg.startswith("-"):
            continue  # an option of a group
        if arg not in commands:
            break
        path.append(arg)
        group = commands[arg]
    return tuple(path)


def check_command(command: Any, args: Sequence[str] | None) -> None:
    """Refuse, in remote mode, a command that works on a local catalog only.

    ``command`` is the CLI's click group; ``args`` the command line (``sys.argv[1:]`` when
    ``None``). Help, and anything outside remote mode, passes.

    Example:
        >>> # check_command(typer.main.get_command(app), ["tables"])
        >>> # ConfigError: 'plinth tables' works on a local catalog only; unset PLINTH_URL ...
    """
    import sys

    from plinth._core.urls import redact_url

    argv = list(sys.argv[1:] if args is None else args)
    path = _command_path(command, argv)
    wants_help = any(a in ("--help", "-h") for a in argv)
    if wants_help or not path:
        return
    try:
        url = _url()
    except ConfigError:  # unusable settings: the command itself reports them
        return
    if not url:
        return
    if path in REMOTE_COMMANDS:
        return
    leaf = _leaf(command, path)
    if getattr(leaf, "commands", None) is not None and not getattr(
        leaf, "invoke_without_command", False
    ):
        return  # a group without a subcommand: it prints its usage
    supported = ", ".join("plinth " + " ".join(p) for p in sorted(REMOTE_COMMANDS))
    raise ConfigError(
        f"'plinth {' '.join(path)}' works on a local catalog only; unset PLINTH_URL to run it "
        f"here (PLINTH_URL is {redact_url(url)}).",
        hint=f"Through the server work: {supported}.",
    )


def _leaf(command: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        command = command.commands[name]
    return command


def list_runs(filter: str | None, sort: str | None, limit: int, offset: int) -> list[RunSummary]:
    """One page of ``plinth runs list`` from the server: ``limit`` runs after ``offset``.

    Example:
        >>> # list_runs("metrics.auc > 0.7", None, 20, 0)
    """
    from itertools import islice

    from plinth.client.base import MAX_LIMIT

    if limit <= 0:
        return []
    size = min(MAX_LIMIT, max(offset + limit, 1))
    with client() as remote:
        found = remote.iter_runs(filter=filter, sort=sort, limit=size)
        return list(islice(found, offset, offset + limit))


def model_and_versions(uri: str) -> tuple[ModelVersionInfo, list[int]]:
    """The version a model URI points at and the model's version numbers, from the server.

    Example:
        >>> # info, versions = model_and_versions("delay@champion")
    """
    from plinth.errors import ModelNotFoundError
    from plinth.registry.uri import parse_uri

    ref = parse_uri(uri)
    with client() as remote:
        if ref.version is not None:
            info = remote.model_version(ref.name, ref.version)
            return info, [v.version for v in remote.model(ref.name).versions]
        detail = remote.model(ref.name)
        versions = [v.version for v in detail.versions]
        if ref.alias is None:
            if not detail.versions:
                raise ModelNotFoundError(f"Model '{ref.name}' has no versions yet.")
            return detail.versions[-1], versions
        return remote.model_version(ref.name, ref.alias), versions
