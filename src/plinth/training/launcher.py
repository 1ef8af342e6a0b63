"""Launch a training script as a tracked run: local, torchrun (DDP) or Ray Train.

The launcher process owns the run. It creates it in the catalog, starts the script with
``PLINTH_RUN_ID`` and the workspace settings in its environment (so ``ws.run(...)`` in the
script attaches to it), streams its output, forwards SIGTERM/SIGINT, and ends the run:
``finished`` on exit 0, ``failed`` with ``exit code N`` and the output's last lines as the
artifact ``output.log``, or ``killed`` when it was stopped. A status the script already
recorded (its own failure, with the traceback) is kept.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from plinth.errors import ConfigError
from plinth.training.parameters import PARAMS_ENV, encode
from plinth.training.process import Outcome, Stopper

if TYPE_CHECKING:
    from plinth._core.settings import Settings
    from plinth.tracking.resources import Usage
    from plinth.tracking.run import Run
    from plinth.workspace import Workspace

LAUNCHER_ENV = "PLINTH_LAUNCHER"
RAY_ADDRESS_ENV = "PLINTH_RAY_ADDRESS"
#: Variables of an outer distributed job that must not leak into a fresh launch.
_DISTRIBUTED_ENV = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
)
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_memory(text: str) -> int:
    """Bytes from a size like ``512M``, ``4GiB``, ``2.5G`` or ``1000000``.

    ``K``/``M``/``G``/``T`` and ``KiB``... are powers of 1024; ``KB``/``MB``/``GB``/``TB``
    powers of 1000.

    Example:
        >>> parse_memory("4G"), parse_memory("1GB"), parse_memory("512MiB")
        (4294967296, 1000000000, 536870912)
    """
    match = _MEMORY.match(str(text))
    if not match:
        raise ConfigError(
            f"'{text}' is not a memory size.",
            hint="Write a number of bytes with an optional unit: 512M, 4G, 4GiB or 8GB.",
        )
    number, unit, binary, byte = match.groups()
    base = 1000 if (byte and not binary and unit) else 1024
    return int(float(number) * base ** _UNITS[unit.lower()])


@dataclass
class LaunchSpec:
    """What to launch and with what resources; ``launcher`` follows from ``nproc``/``ray``.

    Example:
        >>> LaunchSpec(Path("train.py"), nproc=2).launcher
        'torchrun'
    """

    script: Path
    args: list[str] = field(default_factory=list)
    experiment: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    nproc: int | None = None
    ray: str | None = None
    workers: int | None = None
    cpus: float | None = None
    gpus: float | None = None
    memory: int | None = None
    parent: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    echo: bool = True

    @property
    def launcher(self) -> str:
        """``local``, ``torchrun`` or ``ray``."""
        if self.ray is not None:
            return "ray"
        return "torchrun" if self.nproc is not None else "local"

    @property
    def experiment_name(self) -> str:
        """The experiment: as given, else the script's file name without ``.py``."""
        return self.experiment or self.script.stem

    def requested(self) -> dict[str, Any]:
        """The resources asked for, as recorded on the run."""
        asked: dict[str, Any] = {"cpus": self.cpus or 1, "gpus": self.gpus or 0}
        if self.memory is not None:
            asked["memory"] = self.memory
        if self.launcher == "torchrun":
            asked["nproc"] = self.nproc
        elif self.launcher == "ray":
            asked["workers"] = self.workers or 1
            asked["address"] = self.ray
        return asked

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a missing script or impossible resources."""
        if not self.script.is_file():
            raise ConfigError(
                f"The training script '{self.script}' does not exist.",
                hint="Pass the path of a Python file, e.g. plinth train train.py.",
            )
        if self.nproc is not None and self.ray is not None:
            raise ConfigError(
                "--nproc and --ray choose different launchers.",
                hint="Use --nproc N for torchrun on this machine, or --ray with --workers N.",
            )
        if self.workers is not None and self.ray is None:
            raise ConfigError(
                "--workers is for Ray Train.",
                hint="Add --ray [ADDRESS], or use --nproc N to run N processes here.",
            )
        for name, value in (("--nproc", self.nproc), ("--workers", self.workers)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, not {value}.")
        for name, amount in (("--cpus", self.cpus), ("--gpus", self.gpus)):
            if amount is not None and amount < 0:
                raise ConfigError(f"{name} cannot be negative ({amount}).")
        if self.cpus is not None and self.cpus == 0:
            raise ConfigError("--cpus must be more than 0.", hint="Leave it out for 1 CPU.")
        if self.memory is not None and self.memory <= 0:
            raise ConfigError("--memory must be more than 0 bytes.")


@dataclass(frozen=True)
class LaunchResult:
    """The run a launch created and how it ended."""

    run_id: str
    status: str
    exit_code: int
    error: str | None = None


class Backend(Protocol):
    """One way of starting the script's processes."""

    def prepare(self) -> None:
        """Check dependencies and connect, before the run is created."""

    def execute(self, run: Run, env: dict[str, str], stopper: Stopper) -> Outcome:
        """Run the script to its end."""


def workspace_env(settings: Settings) -> dict[str, str]:
    """``PLINTH_*`` variables that make a child process open exactly this workspace.

    Example:
        >>> from plinth._core.settings import Settings
        >>> workspace_env(Settings(home="/tmp/ws"))["PLINTH_HOME"]
        '/tmp/ws'
    """
    values: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        values[f"PLINTH_{name.upper()}"] = text
    return values


def child_env(
    ws: Workspace, run_id: str, spec: LaunchSpec, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of the script's processes: the workspace, the run, the parameters.

    Example:
        >>> # env = child_env(ws, run.id, spec); env["PLINTH_RUN_ID"] == run.id
    """
    from plinth.tracking.run import NAMED_BY_SCRIPT_ENV, RUN_ID_ENV

    env = dict(os.environ if base is None else base)
    for name in _DISTRIBUTED_ENV:
        env.pop(name, None)
    env.update(workspace_env(ws.settings))
    env[RUN_ID_ENV] = run_id
    env[LAUNCHER_ENV] = spec.launcher
    env["PYTHONUNBUFFERED"] = "1"
    if spec.experiment is None:
        env[NAMED_BY_SCRIPT_ENV] = "1"  # the script's ws.run("name") names the experiment
    else:
        env.pop(NAMED_BY_SCRIPT_ENV, None)
    if spec.params:
        env[PARAMS_ENV] = encode(spec.params)
    else:
        env.pop(PARAMS_ENV, None)
    if spec.cpus is not None and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, int(spec.cpus)))
    return env


def backend_for(ws: Workspace, spec: LaunchSpec) -> Backend:
    """The backend that runs ``spec``'s launcher.

    Example:
        >>> # backend_for(ws, LaunchSpec(Path("train.py"))).command()[1]
    """
    if spec.launcher == "ray":
        from plinth.training.ray_launcher import RayBackend

        return RayBackend(ws, spec)
    if spec.launcher == "torchrun":
        from plinth.training.torchrun import TorchrunBackend

        return TorchrunBackend(spec)
    from plinth.training.local import LocalBackend

    return LocalBackend(spec)


def launch(
    ws: Workspace,
    spec: LaunchSpec,
    *,
    stopper: Stopper | None = None,
    on_start: Callable[[Run], None] | None = None,
) -> LaunchResult:
    """Run ``spec``'s script as a tracked run and return how it ended.

    SIGTERM and SIGINT are forwarded to the script while it runs (pass a shared ``stopper``
    to launch several runs under one set of handlers, as ``plinth tune`` does).

    Example:
        >>> # result = launch(ws, LaunchSpec(Path("train.py"), params={"lr": 0.1}))
        >>> # result.status, result.exit_code
        >>> # ('finished', 0)
    """
    from plinth.tracking.run import start_run

    spec = _resolved(spec)
    spec.validate()
    if ws.settings.url:
        return _launch_remote(ws, spec, stopper=stopper, on_start=on_start)
    backend = backend_for(ws, spec)
    owned = stopper is None
    stopper = stopper or Stopper()
    with stopper.installed() if owned else contextlib.nullcontext():
        backend.prepare()
        # Our handlers are in place first, so the run's own SIGTERM handler stays out of the
        # launcher: here a stop is forwarded to the script, which ends its run itself.
        run = start_run(
            ws,
            spec.experiment_name,
            tags=spec.tags,
            parent=spec.parent,
            launcher=spec.launcher,
            entry_point=str(spec.script),
            arguments=list(spec.args),
            requested=spec.requested(),
        )
        if on_start is not None:
            on_start(run)
        outcome = _execute(ws, spec, backend, stopper, run, lambda s, e: _end(ws, run, s, e, None))
        return finish(ws, run, outcome, spec.params)


def _launch_remote(
    ws: Workspace,
    spec: LaunchSpec,
    *,
    stopper: Stopper | None,
    on_start: Callable[[Any], None] | None,
) -> LaunchResult:
    """:func:`launch` in remote mode: the run lives on the server ``PLINTH_URL`` names."""
    from plinth.client.remote import RemoteClient

    backend = backend_for(ws, spec)
    owned = stopper is None
    stopper = stopper or Stopper()
    with (
        RemoteClient(ws.settings.url, ws.settings.token or None) as client,
        stopper.installed() if owned else contextlib.nullcontext(),
    ):
        backend.prepare()
        run = client.start_run(
            spec.experiment_name,
            tags=spec.tags,
            parent=spec.parent,
            launch={
                "launcher": spec.launcher,
                "entry_point": str(spec.script),
                "arguments": list(spec.args),
                "requested": spec.requested(),
            },
            capture=True,
        )
        if on_start is not None:
            on_start(run)
        outcome = _execute(
            ws, spec, backend, stopper, run, lambda s, e: run.end(s, e, record_usage=False)
        )
        return _finish_remote(client, run, outcome, spec.params)


def _execute(
    ws: Workspace,
    spec: LaunchSpec,
    backend: Any,
    stopper: Stopper,
    run: Any,
    end: Callable[[str, str], None],
) -> Outcome:
    """Run the script under ``backend``; if launching itself fails, ``end`` the run first."""
    env = child_env(ws, run.id, spec)
    try:
        return backend.execute(run, env, stopper)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):  # a cancelled Ray task
            end("killed", "interrupted")
        else:
            end("failed", f"{type(exc).__name__}: {exc}")
        raise


def _finish_remote(
    client: Any, run: Any, outcome: Outcome, params: Mapping[str, Any]
) -> LaunchResult:
    """:func:`finish` for a run on the server (``client`` a RemoteClient, ``run`` its
    RemoteRun): the same statuses, output artifact, parameters and resource use."""
    detail = client.run(run.id)
    status, error = _outcome_status(detail.status, outcome)
    if status != "finished":
        text = outcome.tail.text()
        if text:
            run.log_artifact(text, "output.log")
    missing = {k: v for k, v in params.items() if k not in detail.params}
    if missing:
        run.log_params(missing)
    recorded = any(r.rank == 0 for r in detail.resources)
    if recorded or outcome.usage is None:
        run.end(status, error, record_usage=False)
    else:
        run.end(status, error, usage=outcome.usage)
    return LaunchResult(run.id, status, _exit_code(outcome), error or detail.error)


def _resolved(spec: LaunchSpec) -> LaunchSpec:
    from dataclasses import replace

    ray = spec.ray
    if ray is not None and ray in ("", "auto"):
        ray = os.environ.get(RAY_ADDRESS_ENV) or "auto"
    return replace(spec, script=spec.script.expanduser().resolve(), ray=ray)


def finish(ws: Workspace, run: Run, outcome: Outcome, params: Mapping[str, Any]) -> LaunchResult:
    """End the launcher's run from the script's outcome (see the module docstring).

    Example:
        >>> # finish(ws, run, outcome, {"lr": 0.1}).status
    """
    from plinth.catalog.models import Run as RunRecord

    with ws.catalog.session() as session:
        record = session.get(RunRecord, run.id)
        recorded = record.status if record is not None else "running"
        recorded_error = record.error if record is not None else None
    status, error = _outcome_status(recorded, outcome)
    if status != "finished":
        text = outcome.tail.text()
        if text:
            run.log_artifact(text, "output.log")
    _log_missing_params(ws, run, params)
    _end(ws, run, status, error, outcome.usage)
    return LaunchResult(run.id, status, _exit_code(outcome), error or recorded_error)


def _outcome_status(recorded: str, outcome: Outcome) -> tuple[str, str | None]:
    """The status and error a launcher ends its run with, given what the run records now."""
    import signal

    if recorded != "running":
        return recorded, None  # the script ended its run itself (with its own error text)
    if outcome.stopped is not None:
        return "killed", f"stopped by {signal.Signals(outcome.stopped).name}"
    if outcome.exit_code == 0:
        return "finished", None
    return "failed", outcome.error or f"exit code {outcome.exit_code}"


def _exit_code(outcome: Outcome) -> int:
    """The launcher's exit code: 128 + the signal for a stopped script."""
    if outcome.stopped is not None and outcome.exit_code != 0:
        return 128 + outcome.stopped  # torchrun reports a stop as a plain failure
    return outcome.exit_code


def _log_missing_params(ws: Workspace, run: Run, params: Mapping[str, Any]) -> None:
    """Record the launch's parameters the script did not log itself (a plain script)."""
    if not params:
        return
    from sqlalchemy import select

    from plinth.catalog.models import RunParam

    with ws.catalog.session() as session:
        logged = set(session.scalars(select(RunParam.key).where(RunParam.run_id == run.id)))
    missing = {k: v for k, v in params.items() if k not in logged}
    if missing:
        run.log_params(missing)


def _end(ws: Workspace, run: Run, status: str, error: str | None, usage: Usage | None) -> None:
    """End the run, keeping the rank-0 resource use its script recorded.

    When the script attached it recorded its own use; otherwise ``usage`` (read with
    ``wait4``) is the child's exact use. The launcher's own process is never counted.
    """
    from plinth.catalog.models import RunResource

    with ws.catalog.session() as session:
        recorded = session.get(RunResource, (run.id, 0)) is not None
    if recorded or usage is None:
        run.end(status, error, record_usage=False)
    else:
        run.end(status, error, usage=usage)


def end_with_usage(ws: Workspace, run: Run, status: str, error: str | None, usage: Usage) -> None:
    """End ``run`` and record ``usage`` as its rank-0 resource use.

    Example:
        >>> # end_with_usage(ws, parent, "finished", None, meter.usage())
    """
    run.end(status, error, usage=usage)
