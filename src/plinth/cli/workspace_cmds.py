"""``plinth init`` and ``plinth info``: create a workspace and show its resolved settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Workspace folder (overrides PLINTH_HOME).", show_default=False),
]


def register(app: typer.Typer) -> None:
    """Add the workspace commands to ``app``."""
    app.command("init")(init)
    app.command("info")(info)


def init(
    home: HomeOption = None,
    ci: Annotated[
        str | None,
        typer.Option("--ci", help="Also write a CI workflow: github (.github/workflows/)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing CI workflow file.")
    ] = False,
) -> None:
    """Create the workspace: folder, catalog schema and storage root (safe to run twice)."""
    from pathlib import Path

    from plinth.cli.output import console, styled
    from plinth.errors import ConfigError
    from plinth.workspace import Workspace

    if ci is not None and ci != "github":
        raise ConfigError(f"Unknown CI system '{ci}'.", hint="Use --ci github.")
    with Workspace(home) as ws:
        made = ws.init()
        pipeline = ws.settings.pipeline or None
    console.print(styled(("Workspace ready", "green"), f" at {made['home']}"))
    console.print(f"  catalog: {made['catalog']}")
    console.print(f"  storage: {made['storage']}")
    if ci == "github":
        from plinth.cli.ci_cmds import write_github_workflow

        path = write_github_workflow(Path.cwd(), pipeline, force=force)
        console.print(f"  CI workflow: {path} (tests, then 'plinth ci')")


def info(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every resolved setting and where its value came from."""
    from rich.table import Table

    from plinth import __version__
    from plinth._core.settings import load_settings
    from plinth._core.urls import redact_url
    from plinth.cli.output import console, print_json

    resolved = load_settings(home=home)
    settings = resolved.settings
    values = {
        "home": str(settings.home),
        "database_url": redact_url(settings.catalog_url),
        "storage_url": settings.storage_root,
        "online_url": redact_url(settings.online_store_url),
        "contracts_dir": settings.contracts_dir,
        "profile_on_ingest": str(settings.profile_on_ingest).lower(),
        "pipeline": settings.pipeline,
        "user": settings.user,
        "project": settings.project,
        "auth": str(settings.auth).lower(),
        "oidc_issuer": settings.oidc_issuer,
        "oidc_audience": settings.oidc_audience,
        "oidc_jwks_url": redact_url(settings.oidc_jwks_url),
        "rate_limit": str(settings.rate_limit),
        "openlineage_url": redact_url(settings.openlineage_url),
        # Secrets are never printed: only whether they are set.
        "encryption_key": "(set)" if settings.encryption_key else "",
        "encryption_key_file": settings.encryption_key_file,
        "prices": ", ".join(f"{k}={v}" for k, v in sorted(settings.prices.items())),
        "budgets": ", ".join(f"{k}={v}" for k, v in sorted(settings.budgets.items())),
        "url": redact_url(settings.url),
        "token": "(set)" if settings.token else "",
    }
    if as_json:
        print_json(
            {
                "version": __version__,
                "config_file": str(resolved.config_file) if resolved.config_file else None,
                "settings": {
                    k: {"value": v, "source": resolved.origins[k]} for k, v in values.items()
                },
            }
        )
        return
    table = Table(title=f"Plinth {__version__}")
    table.add_column("setting", no_wrap=True)
    table.add_column("value")
    table.add_column("from")
    for name, value in values.items():
        origin = resolved.origins[name]
        if origin == "default" and name in {"database_url", "storage_url", "online_url"}:
            origin = "default (under home)"
        table.add_row(f"PLINTH_{name.upper()}", value, origin)
    console.print(table)
    config = resolved.config_file or "none found (looked for plinth.toml here and above)"
    console.print(f"config file: {config}")
