"""Training: launch a script as a tracked run (local, torchrun, Ray Train) and tune it.

The script side is small and works the same under every launcher:

* :func:`params` - the script's parameters with ``--param``/trial overrides applied;
* :func:`save_checkpoint` - store a checkpoint as a run artifact (and report it to Ray);
* :mod:`plinth.training.distributed` - ``setup``, ``is_main``, ``all_reduce_mean``,
  ``barrier``, ``cleanup``.

The launcher side is :func:`launch` (``plinth train``) and :func:`tune` (``plinth tune``).

Example:
    >>> from plinth.training import params
    >>> params({"lr": 0.1})
    {'lr': 0.1}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plinth.training.checkpoint import save_checkpoint
from plinth.training.parameters import PARAMS_ENV, params

__all__ = [
    "PARAMS_ENV",
    "LaunchResult",
    "LaunchSpec",
    "TuneResult",
    "TuneSpec",
    "launch",
    "params",
    "save_checkpoint",
    "tune",
]

_LAZY = {
    "LaunchResult": "plinth.training.launcher",
    "LaunchSpec": "plinth.training.launcher",
    "launch": "plinth.training.launcher",
    "TuneResult": "plinth.training.search",
    "TuneSpec": "plinth.training.search",
    "tune": "plinth.training.search",
}

if TYPE_CHECKING:
    from plinth.training.launcher import LaunchResult, LaunchSpec, launch
    from plinth.training.search import TuneResult, TuneSpec, tune


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plinth.training' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
