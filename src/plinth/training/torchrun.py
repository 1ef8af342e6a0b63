"""The torchrun launcher: PyTorch DDP with N processes on this machine.

``python -m torch.distributed.run --standalone --nproc_per_node N SCRIPT ARGS``: torchrun
sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous address for each process;
:func:`plinth.training.distributed.setup` initialises the process group from them. Every
rank attaches to the one run; rank 0 records metrics, each rank its own resource use.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

from plinth.errors import ConfigError
from plinth.training.process import Outcome, Stopper, run_process

if TYPE_CHECKING:
    from plinth.tracking.run import Run
    from plinth.training.launcher import LaunchSpec


class TorchrunBackend:
    """Run the script under torchrun with ``spec.nproc`` processes.

    Example:
        >>> from pathlib import Path
        >>> from plinth.training.launcher import LaunchSpec
        >>> TorchrunBackend(LaunchSpec(Path("t.py"), nproc=2)).command()[2:6]
        ['torch.distributed.run', '--standalone', '--nproc_per_node', '2']
    """

    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec

    def command(self) -> list[str]:
        """The torchrun command line."""
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(self.spec.nproc),
            str(self.spec.script),
            *self.spec.args,
        ]

    def prepare(self) -> None:
        """Check that PyTorch is installed."""
        if importlib.util.find_spec("torch") is None:
            raise ConfigError(
                "--nproc runs the script with torchrun, and PyTorch is not installed.",
                hint="Install it with: pip install 'plinth-ai[torch]'.",
            )

    def execute(self, run: Run, env: dict[str, str], stopper: Stopper) -> Outcome:
        """Run torchrun to its end; a stop is forwarded to torchrun, which stops its workers."""
        env.setdefault("OMP_NUM_THREADS", "1")
        return run_process(self.command(), env, stopper=stopper, echo=self.spec.echo)
