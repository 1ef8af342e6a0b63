"""The ``plinth`` command line: a Typer app with one module per command group."""
