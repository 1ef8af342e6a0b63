"""Entry point of the ``plinth`` command: builds the app and turns errors into clean exits.

Command modules import heavy libraries inside their functions so ``plinth --help`` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from plinth.cli import (
    access_cmds,
    audit_cmds,
    capacity_cmd,
    ci_cmds,
    cost_cmds,
    docs_cmds,
    features_cmds,
    lake_cmds,
    lineage_cmds,
    models_cmds,
    monitor_cmds,
    observe_cmds,
    optimize_cmd,
    pipeline_cmds,
    predict_cmd,
    quality_cmds,
    quickstart_cmd,
    runs_cmds,
    serve_cmds,
    server_cmds,
    train_cmds,
    workspace_cmds,
)

app = typer.Typer(
    name="plinth",
    help="Plinth: data lake, features, training, registry, pipelines, serving and monitoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
workspace_cmds.register(app)
lake_cmds.register(app)
quality_cmds.register(app)
observe_cmds.register(app)
features_cmds.register(app)
runs_cmds.register(app)
pipeline_cmds.register(app)
models_cmds.register(app)
train_cmds.register(app)
ci_cmds.register(app)
serve_cmds.register(app)
capacity_cmd.register(app)
optimize_cmd.register(app)
predict_cmd.register(app)
monitor_cmds.register(app)
access_cmds.register(app)
audit_cmds.register(app)
lineage_cmds.register(app)
docs_cmds.register(app)
cost_cmds.register(app)
server_cmds.register(app)
quickstart_cmd.register(app)


def run() -> None:
    """Console-script entry point: run the CLI on ``sys.argv`` and exit with its status."""
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status; a PlinthError prints its message, no traceback.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
        0
    """
    from plinth.cli.remote import check_command
    from plinth.errors import PlinthError

    command = typer.main.get_command(app)
    try:
        check_command(command, argv)
        # Outside standalone mode click returns a command's ``typer.Exit(code)`` as a value.
        code = command.main(args=argv, prog_name="plinth", standalone_mode=False)
    except PlinthError as exc:
        _print_error(str(exc))
        return 1
    except typer.Abort:
        _print_error("Aborted.")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except Exception as exc:
        # Typer ships its own copy of click; usage errors are recognised by their interface.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return int(exc.exit_code)
        return _internal_error(exc)
    except KeyboardInterrupt:
        _print_error("Interrupted.")
        return 130
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _internal_error(exc: Exception) -> int:
    if os.environ.get("PLINTH_DEBUG"):
        raise exc
    _print_error(
        f"Internal error: {type(exc).__name__}: {exc}. This is a bug in Plinth; run again "
        "with PLINTH_DEBUG=1 to see the traceback and report it."
    )
    return 2


def _print_error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]Error:[/] {escape(message)}", highlight=False
    )


if __name__ == "__main__":
    run()
