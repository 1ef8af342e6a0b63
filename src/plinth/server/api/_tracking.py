"""Tracking a run over HTTP: the same catalog path as :mod:`plinth.tracking.run`.

A run created here is not held open by the server: each request writes through a short-lived
:class:`~plinth.tracking.writer.MetricWriter` (or :class:`~plinth.tracking.run.Run` handle)
and flushes before answering, so a restart loses nothing and a run stays ``running`` until
a client ends it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plinth.errors import ConfigError, ConflictError

if TYPE_CHECKING:
    from plinth.tracking.run import Run
    from plinth.workspace import Workspace

__all__ = ["create", "end", "log_artifact", "log_params", "log_points", "use"]

_MAX_TIME_US = 253_402_300_799 * 1_000_000  # 9999-12-31


def _running(ws: Workspace, run_id: str) -> str:
    """The experiment of run ``run_id``; 404 if unknown, 409 once it has ended.

    A run its attached script marked failed or killed is not ended until its launcher ends
    it: the launcher may still add its output and parameters (as it does locally).
    """
    from plinth.catalog.models import Run as RunRecord
    from plinth.tracking.service import _not_found

    with ws.catalog.session() as session:
        record = session.get(RunRecord, run_id)
        if record is None:
            raise _not_found(run_id)
        if record.status != "running" and record.ended_at is not None:
            raise ConflictError(
                f"Run '{run_id}' has ended ({record.status}); it takes no more points, "
                "parameters or status.",
                hint="Start a new run with POST /api/v1/runs.",
            )
        return record.experiment


def _detach(run: Run) -> None:
    """Stop a handle's writer without ending the run (the client ends it)."""
    from plinth.tracking import run as run_module

    run_module._open_runs.discard(run)
    if run._writer is not None:
        run._writer.close()


@contextmanager
def _handle(ws: Workspace, run_id: str) -> Iterator[Run]:
    from plinth.tracking.run import Run

    handle = Run(ws, run_id, _running(ws, run_id), owner=True)
    try:
        yield handle
    finally:
        _detach(handle)


def create(
    ws: Workspace,
    experiment: str,
    params: Mapping[str, Any] | None,
    tags: Mapping[str, Any] | None,
    **launch: Any,
) -> str:
    """Start a run (launcher ``api`` unless ``launch`` says otherwise) and return its id; it
    stays running until ended. ``launch`` may give ``launcher``, ``parent``, ``entry_point``,
    ``arguments`` and ``requested`` (what ``plinth train`` records on a run it starts).

    Example:
        >>> # run_id = create(ws, "delay", {"lr": 0.1}, None, entry_point="train.py")
    """
    from plinth.tracking.run import start_run

    options = {k: v for k, v in launch.items() if v is not None}
    options.setdefault("launcher", "api")
    run = start_run(ws, experiment, params=params, tags=tags, capture=False, **options)
    _detach(run)
    return run.id


def log_points(
    ws: Workspace, run_id: str, points: Sequence[tuple[str, float, int | None, int]]
) -> int:
    """Write ``(key, value, step, time_us)`` points to a running run; a missing step is the
    key's previous step plus one. Returns how many were written.

    Example:
        >>> # log_points(ws, run_id, [("loss", 0.5, 0, 1_700_000_000_000_000)])
    """
    from plinth.catalog.models import RunMetric
    from plinth.tracking.checks import check_value
    from plinth.tracking.writer import MetricWriter

    _running(ws, run_id)
    keys = {key for key, *_ in points}
    for key, value, _, time_us in points:
        check_value(key, value)
        if not 0 <= time_us <= _MAX_TIME_US:
            raise ConfigError(
                f"Metric '{key}' has a timestamp outside years 1970 to 9999.",
                hint="Send seconds since the epoch or an ISO 8601 time.",
            )
    steps: dict[str, int] = {}
    if any(step is None for _, _, step, _ in points):
        with ws.catalog.session() as session:
            steps = dict(
                session.execute(
                    select(RunMetric.key, RunMetric.last_step).where(
                        RunMetric.run_id == run_id, RunMetric.key.in_(list(keys))
                    )
                ).all()
            )
    writer = MetricWriter(ws.catalog, run_id)
    try:
        for key, value, step, time_us in points:
            if step is None:
                step = steps.get(key, -1) + 1
            steps[key] = max(step, steps.get(key, step))
            writer.add(key, step, time_us, float(value))
    finally:
        writer.close()
    return len(points)


def log_params(ws: Workspace, run_id: str, params: Mapping[str, Any]) -> None:
    """Record parameters of a running run (409 when one would change).

    Example:
        >>> # log_params(ws, run_id, {"depth": 6})
    """
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"Parameter '{key}' is not a finite number.")
    with _handle(ws, run_id) as handle:
        handle.log_params(params)


def end(
    ws: Workspace,
    run_id: str,
    status: str,
    error: str | None,
    usage: Mapping[str, Any] | None = None,
    *,
    attached: bool = False,
    rank: int = 0,
) -> None:
    """End a run with ``status`` (and ``error`` for a failure), recording the process's
    resource ``usage`` when given.

    ``attached`` is a process that joined a launcher's run: as locally, it records its usage
    (as ``rank``: each torchrun rank its own) and settles the status only when it failed or
    was killed; the launcher ends the run. The launcher may end a run its script already
    marked failed, and the other ranks still record their usage then (409 once it has ended).

    Example:
        >>> # end(ws, run_id, "finished", None, {"wall_seconds": 3.2, "cpu_seconds": 2.9})
    """
    from plinth.catalog.models import Run as RunRecord
    from plinth.tracking.resources import Usage
    from plinth.tracking.run import Run
    from plinth.tracking.service import _not_found

    with ws.catalog.session() as session:
        record = session.get(RunRecord, run_id)
        if record is None:
            raise _not_found(run_id)
        experiment, recorded, ended = record.experiment, record.status, record.ended_at
    if rank and not attached:
        raise ConfigError(
            f"Only a process attached to a launcher's run ends it as rank {rank}.",
            hint="Send attached: true with the rank, or leave the rank out.",
        )
    if ended is not None:
        raise ConflictError(
            f"Run '{run_id}' has ended ({recorded}); it takes no more points, parameters or "
            "status.",
            hint="Start a new run with POST /api/v1/runs.",
        )
    handle = Run(ws, run_id, experiment, owner=not attached, rank=rank)
    _detach(handle)
    handle._writer = None
    measured = Usage(**{**_NO_USAGE, **usage}) if usage is not None else None
    handle.end(status, error, usage=measured, record_usage=False)


_NO_USAGE: dict[str, Any] = {
    "host": "unknown",
    "wall_seconds": 0.0,
    "cpu_seconds": 0.0,
    "peak_rss_bytes": 0,
    "gpu_count": 0,
    "gpu_seconds": 0.0,
    "gpu_peak_bytes": 0,
}


def log_artifact(ws: Workspace, run_id: str, name: str, kind: str, data: bytes) -> int:
    """Store ``data`` in the artifact store as the artifact ``name`` of a running run, as
    :meth:`plinth.tracking.Run.log_artifact` does; returns its size in bytes.

    Example:
        >>> # log_artifact(ws, run_id, "model.pkl", "file", payload)
    """
    from plinth.storage.keys import safe_key

    safe_key(name)
    with _handle(ws, run_id) as handle:
        ref = ws.artifacts.put_bytes(data)
        handle._record_artifact(name, kind, ref.digest, ref.size)
    return int(ref.size)


def use(ws: Workspace, run_id: str, sources: Sequence[str]) -> list[str]:
    """Record inputs of a running run (``table@N``, ``table``, ``training_set:<id>``), as
    :meth:`plinth.tracking.Run.use` does; returns their lineage ids.

    Example:
        >>> # use(ws, run_id, ["flights@3"])
    """
    with _handle(ws, run_id) as handle:
        return [handle.use(source) for source in sources]
