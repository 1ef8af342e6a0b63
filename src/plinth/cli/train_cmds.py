"""``plinth train`` and ``plinth tune``: launch a training script as a tracked run, or search
its hyperparameters with one child run per trial.

Everything after SCRIPT that is not a Plinth option goes to the script; after ``--``
everything does (``plinth train mlp.py --nproc 2 -- --workers 4``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.training.search import TrialResult, TuneResult

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
STATUS_STYLES = {"finished": "green", "running": "cyan", "failed": "red", "killed": "yellow"}


def fill_ray_address(args: list[str]) -> list[str]:
    """Give a bare ``--ray`` its default address ``auto``, so ADDRESS can be left out.

    Example:
        >>> fill_ray_address(["mlp.py", "--ray", "--workers", "2"])
        ['mlp.py', '--ray', 'auto', '--workers', '2']
        >>> fill_ray_address(["mlp.py", "--ray", "10.0.0.5:6379"])
        ['mlp.py', '--ray', '10.0.0.5:6379']
    """
    filled: list[str] = []
    for index, arg in enumerate(args):
        filled.append(arg)
        if arg == "--":
            return filled + args[index + 1 :]
        if arg == "--ray":
            following = args[index + 1] if index + 1 < len(args) else None
            if (
                following is None
                or following.startswith("-")
                or following.endswith(".py")
                or os.path.isfile(following)
            ):
                filled.append("auto")
    return filled


class LauncherCommand(TyperCommand):
    """A command whose ``--ray`` option takes an optional value."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, fill_ray_address(list(args)))


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``tune`` to ``app``."""
    app.command("train", cls=LauncherCommand, context_settings=_PASS_THROUGH)(train)
    app.command("tune", cls=LauncherCommand, context_settings=_PASS_THROUGH)(tune)


ScriptArgument = Annotated[
    Path, typer.Argument(help="The training script (a Python file).", show_default=False)
]
ArgsArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Arguments for the script.", show_default=False, metavar="ARGS"),
]
ExperimentOption = Annotated[
    str | None,
    typer.Option("--experiment", "-e", help="Experiment name (default: the script's name)."),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="A parameter NAME=VALUE for the script (repeatable)."),
]
RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Run on a Ray cluster (default address: PLINTH_RAY_ADDRESS, else auto).",
        show_default=False,
    ),
]
CpusOption = Annotated[
    float | None, typer.Option("--cpus", help="CPUs per process, worker or trial (default 1).")
]
GpusOption = Annotated[
    float | None, typer.Option("--gpus", help="GPUs per process, worker or trial (default 0).")
]
MemoryOption = Annotated[
    str | None,
    typer.Option("--memory", help="Memory per worker or trial, e.g. 4G or 512MiB."),
]


def _memory(text: str | None) -> int | None:
    from plinth.training.launcher import parse_memory

    return parse_memory(text) if text is not None else None


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False)


def train(
    script: ScriptArgument,
    args: ArgsArgument = None,
    experiment: ExperimentOption = None,
    param: ParamOption = None,
    nproc: Annotated[
        int | None, typer.Option("--nproc", help="Run N processes with torchrun (PyTorch DDP).")
    ] = None,
    ray: RayOption = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Ray Train workers (with --ray; default 1).")
    ] = None,
    cpus: CpusOption = None,
    gpus: GpusOption = None,
    memory: MemoryOption = None,
    home: HomeOption = None,
) -> None:
    """Run a training script as a tracked run: locally, with torchrun, or on Ray."""
    import time

    from plinth.cli.output import styled
    from plinth.training.launcher import LaunchSpec, launch
    from plinth.training.parameters import parse_assignments
    from plinth.workspace import Workspace

    spec = LaunchSpec(
        script=script,
        args=list(args or []),
        experiment=experiment,
        params=parse_assignments(param or []),
        nproc=nproc,
        ray=ray,
        workers=workers,
        cpus=cpus,
        gpus=gpus,
        memory=_memory(memory),
    )
    err = _stderr()
    started = time.perf_counter()

    def announce(run: Any) -> None:
        err.print(
            styled(
                ("Run ", "bold"),
                (run.id, "bold"),
                f" started: experiment {run.experiment}, launcher {spec.launcher}",
            )
        )

    with Workspace(home) as ws:
        result = launch(ws, spec, on_start=announce)
    elapsed = time.perf_counter() - started
    detail = f" ({result.error})" if result.error else ""
    err.print(
        styled(
            f"Run {result.run_id} ",
            (result.status, STATUS_STYLES.get(result.status, "")),
            f" in {elapsed:.1f} s{detail}; see 'plinth runs show {result.run_id}'.",
        )
    )
    raise typer.Exit(result.exit_code)


def tune(
    script: ScriptArgument,
    args: ArgsArgument = None,
    space: Annotated[
        Path,
        typer.Option(
            "--space", help="Search space YAML file (default: space.yaml).", show_default=False
        ),
    ] = Path("space.yaml"),
    trials: Annotated[int, typer.Option("--trials", "-n", help="Number of trials.")] = 10,
    metric: Annotated[
        str, typer.Option("--metric", "-m", help="Metric to optimise (its last value).")
    ] = "val_loss",
    direction: Annotated[
        str, typer.Option("--direction", help="minimize or maximize.")
    ] = "minimize",
    ray: RayOption = None,
    parallel: Annotated[int, typer.Option("--parallel", "-j", help="Trials at a time.")] = 1,
    experiment: ExperimentOption = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A fixed parameter NAME=VALUE for every trial."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sampler.")] = None,
    cpus: CpusOption = None,
    gpus: GpusOption = None,
    memory: MemoryOption = None,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Search hyperparameters with Optuna: one child run per trial, the best one tagged."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from plinth.cli.output import styled
    from plinth.training.parameters import parse_assignments
    from plinth.training.search import TuneSpec
    from plinth.training.search import tune as run_search
    from plinth.workspace import Workspace

    spec = TuneSpec(
        script=script,
        space=space,
        trials=trials,
        metric=metric,
        args=list(args or []),
        direction=direction.strip().lower(),
        ray=ray,
        parallel=parallel,
        experiment=experiment,
        params=parse_assignments(param or []),
        seed=seed,
        cpus=cpus,
        gpus=gpus,
        memory=_memory(memory),
    )
    err = _stderr()
    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best {task.fields[best]}", markup=False),
        console=err,
        transient=True,
    )
    task = progress.add_task("trials", total=trials, best="-")
    best: list[float] = []

    def started(parent: Any) -> None:
        progress.update(task, description=f"tuning {parent.id}")

    def finished(trial: TrialResult) -> None:
        if trial.value is not None:
            best.append(trial.value)
            pick = max if spec.direction == "maximize" else min
            progress.update(task, best=f"{pick(best):.6g}")
        value = f"{metric}={trial.value:.6g}" if trial.value is not None else trial.error or ""
        progress.console.print(
            styled(
                f"trial {trial.number} {trial.run_id or '-'} ",
                (trial.status, STATUS_STYLES.get(trial.status, "")),
                f" {value} {_params_text(trial.params)}",
            )
        )
        progress.advance(task)

    with Workspace(home) as ws, progress:
        result = run_search(ws, spec, on_trial=finished, on_start=started)
    if as_json:
        from plinth.cli.output import print_json

        print_json(_result_dict(result))
    else:
        _print_result(result, metric)
    raise typer.Exit(result.exit_code)


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _result_dict(result: TuneResult) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "parent": result.parent_id,
        "status": result.status,
        "best": asdict(result.best) if result.best else None,
        "trials": [asdict(t) for t in result.trials],
    }


def _print_result(result: TuneResult, metric: str) -> None:
    from plinth.cli.output import console, styled

    console.print(
        styled(
            f"Tuning run {result.parent_id} ",
            (result.status, STATUS_STYLES.get(result.status, "")),
            f": {sum(t.value is not None for t in result.trials)} of {len(result.trials)} "
            "trials succeeded.",
        )
    )
    if result.best is not None:
        console.print(
            f"best: trial {result.best.number}, run {result.best.run_id}, "
            f"{metric}={result.best.value:.6g}, {_params_text(result.best.params)}"
        )
