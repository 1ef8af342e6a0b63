"""The local launcher: ``python SCRIPT ARGS`` as one child process of ``plinth train``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from plinth.training.process import Outcome, Stopper, run_process

if TYPE_CHECKING:
    from plinth.tracking.run import Run
    from plinth.training.launcher import LaunchSpec


class LocalBackend:
    """Run the script in one process with this interpreter.

    Example:
        >>> from pathlib import Path
        >>> from plinth.training.launcher import LaunchSpec
        >>> LocalBackend(LaunchSpec(Path("train.py"), ["--fast"])).command()[1:]
        ['train.py', '--fast']
    """

    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec

    def command(self) -> list[str]:
        """The command line of the script's process."""
        return [sys.executable, str(self.spec.script), *self.spec.args]

    def prepare(self) -> None:
        """Nothing to check: the script runs with this interpreter."""

    def execute(self, run: Run, env: dict[str, str], stopper: Stopper) -> Outcome:
        """Run the script to its end."""
        return run_process(self.command(), env, stopper=stopper, echo=self.spec.echo)
