"""Save a checkpoint as an artifact of the current run (and report it to Ray Train under Ray).

Call :func:`save_checkpoint` on every rank: rank 0 stores the checkpoint through
``run.log_artifact``; under Ray Train every rank must also take part in ``ray.train.report``
(a barrier there), which this does, with the checkpoint from rank 0 only.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth.tracking.run import Run

#: Marks a checkpoint folder that is already a run artifact, so the Ray launcher skips it.
LOGGED_MARKER = ".plinth-logged"


def _write(source: Any, target: Path) -> None:
    """Write a checkpoint object to ``target`` (torch.save for torch objects, else pickle)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.save(source, target)
        return
    import pickle

    with target.open("wb") as handle:
        pickle.dump(source, handle, protocol=pickle.HIGHEST_PROTOCOL)


def save_checkpoint(
    obj_or_path: Any,
    name: str,
    *,
    run: Run | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> str:
    """Store a checkpoint as the run artifact ``name``; return the name.

    ``obj_or_path`` is a file or folder (stored as it is) or an object: a state dict, a
    model, anything ``torch.save`` (or pickle, without torch) can write. The run is the
    current one unless ``run`` is given. Under Ray Train the checkpoint is also reported to
    Ray (with ``metrics``); call it on every rank there.

    Example:
        >>> # save_checkpoint(model.state_dict(), "model.pt")
        >>> # save_checkpoint("outputs/best", "best")
    """
    from plinth.training import distributed

    path = Path(obj_or_path) if isinstance(obj_or_path, str | os.PathLike) else None
    if path is not None and not path.exists():
        raise ConfigError(
            f"The checkpoint '{path}' does not exist.",
            hint="Pass an existing file or folder, or the object to save (e.g. a state dict).",
        )
    under_ray = os.environ.get("PLINTH_LAUNCHER") == "ray"
    main = distributed.is_main() if "torch" in sys.modules else True
    if not main and not under_ray:
        return name
    if main:
        from plinth.tracking.run import current_run

        run = run or current_run()
        if run is None:
            raise ConfigError(
                "save_checkpoint needs an open run.",
                hint="Call it inside 'with ws.run(...) as run:', or pass run=run.",
            )
    with tempfile.TemporaryDirectory(prefix="plinth-ckpt-") as folder:
        staged = Path(folder) / "checkpoint"
        staged.mkdir()
        source: Path | None = path
        if main and path is None:
            source = staged / Path(name).name
            _write(obj_or_path, source)
        if main and run is not None and source is not None:
            run.log_artifact(source, name)
        if under_ray:
            _report_to_ray(source if main else None, staged, metrics)
    return name


def _report_to_ray(source: Path | None, staged: Path, metrics: Mapping[str, Any] | None) -> None:
    import shutil

    import ray.train

    checkpoint = None
    if source is not None:
        if source.parent != staged:
            target = staged / source.name
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        (staged / LOGGED_MARKER).write_text("stored as a run artifact by save_checkpoint\n")
        checkpoint = ray.train.Checkpoint.from_directory(str(staged))
    ray.train.report(dict(metrics or {}), checkpoint=checkpoint)
