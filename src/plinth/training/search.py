"""Hyperparameter search: Optuna asks for parameters, each trial is a tracked child run.

``plinth tune`` creates a parent run (launcher ``tune``). Each trial is launched like
``plinth train`` with the sampled parameters (in ``PLINTH_PARAMS``) as a child run of the
parent; its objective is the last value of the chosen metric in the catalog. Trials that
fail, or never log the metric, are told to Optuna as failed. At the end the best trial's run
gets the tag ``best=true`` and the parent the tags ``best_run``, ``best_value``,
``best_params`` (JSON) and ``best.<name>`` for each parameter.

Locally trials run in threads (``--parallel K`` at a time), each its own process; with
``--ray`` each trial is a Ray task on the cluster (``--cpus``/``--gpus``/``--memory`` each).

In remote mode (``PLINTH_URL``) the parent run and every trial's run are recorded on the
server (the trials run on this machine, each launched as ``plinth train`` launches in remote
mode), objectives are read from there and the tags set there. With ``--ray`` too, each
trial's Ray task launches its script in remote mode on its node, so the cluster reaches the
server, not the catalog.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError
from plinth.tracking.resources import ResourceMeter
from plinth.training.launcher import LaunchResult, LaunchSpec, launch
from plinth.training.process import Stopper
from plinth.training.space import Dimension, load_space

if TYPE_CHECKING:
    from plinth.client.runs import RemoteRun
    from plinth.tracking.run import Run
    from plinth.workspace import Workspace

DIRECTIONS = ("minimize", "maximize")


@dataclass
class TuneSpec:
    """A search: the script, the space, how many trials, what to optimise, where to run."""

    script: Path
    space: Path
    trials: int
    metric: str
    args: list[str] = field(default_factory=list)
    direction: str = "minimize"
    ray: str | None = None
    parallel: int = 1
    experiment: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    cpus: float | None = None
    gpus: float | None = None
    memory: int | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` for impossible settings."""
        if self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, not {self.trials}.")
        if self.parallel < 1:
            raise ConfigError(f"--parallel must be at least 1, not {self.parallel}.")
        if self.direction not in DIRECTIONS:
            raise ConfigError(
                f"'{self.direction}' is not a direction.", hint="Use minimize or maximize."
            )
        if not self.metric.strip():
            raise ConfigError("--metric names no metric.", hint="Pass e.g. --metric val_loss.")

    def trial_spec(self, params: dict[str, Any], parent: str, number: int) -> LaunchSpec:
        """The launch of one trial."""
        return LaunchSpec(
            script=self.script,
            args=list(self.args),
            experiment=self.experiment or self.script.stem,
            params={**self.params, **params},
            cpus=self.cpus,
            gpus=self.gpus,
            memory=self.memory,
            parent=parent,
            tags={"trial": number},
            echo=False,
        )


@dataclass(frozen=True)
class TrialResult:
    """One trial: its run, how it ended, its objective value and parameters."""

    number: int
    run_id: str | None
    status: str
    value: float | None
    params: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class TuneResult:
    """A finished search."""

    parent_id: str
    status: str
    trials: list[TrialResult]
    best: TrialResult | None
    exit_code: int


def objective(ws: Workspace, run_id: str, metric: str) -> float | None:
    """The last value of ``metric`` the run logged, or None (not logged, or not finite).

    Example:
        >>> # objective(ws, "run_abc", "val_loss")
    """
    from sqlalchemy import select

    from plinth.catalog.models import RunMetric

    with ws.catalog.session() as session:
        value = session.scalar(
            select(RunMetric.last).where(RunMetric.run_id == run_id, RunMetric.key == metric)
        )
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class _LocalTrials:
    """Trials as processes of this machine, ``parallel`` at a time (one thread each)."""

    def __init__(self, ws: Workspace, spec: TuneSpec, stopper: Stopper) -> None:
        self.ws = ws
        self.stopper = stopper
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=spec.parallel, thread_name_prefix="plinth-trial"
        )

    def prepare(self) -> None:
        """Nothing to connect to."""

    def submit(self, spec: LaunchSpec) -> Any:
        """Start one trial."""
        return self.pool.submit(launch, self.ws, spec, stopper=self.stopper)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        """The handles that are done (waits up to ``timeout`` for one)."""
        done, _ = concurrent.futures.wait(
            handles, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )
        return list(done)

    def result(self, handle: Any) -> LaunchResult:
        """The trial's launch result (raises what the launch raised)."""
        return handle.result()

    def cancel(self, handles: list[Any]) -> None:
        """Stops reach local trials through the shared stopper; nothing more to do."""

    def close(self) -> None:
        """Wait for the threads."""
        self.pool.shutdown(wait=True)


class _RayTrials:
    """Trials as Ray tasks on a cluster, each running the local launcher there."""

    def __init__(self, ws: Workspace, spec: TuneSpec) -> None:
        self.ws = ws
        self.spec = spec
        self.ray: Any = None
        self.task: Any = None

    def prepare(self) -> None:
        """Connect to the cluster."""
        from plinth.training.ray_launcher import connect

        self.ray = connect(self.spec.ray or "auto")
        options: dict[str, Any] = {"num_cpus": self.spec.cpus or 1, "max_retries": 0}
        if self.spec.gpus:
            options["num_gpus"] = self.spec.gpus
        if self.spec.memory:
            options["memory"] = self.spec.memory
        self.task = self.ray.remote(_trial_task).options(**options)

    def submit(self, spec: LaunchSpec) -> Any:
        """Start one trial as a Ray task."""
        return self.task.remote(self.ws.settings.model_dump(), _spec_dict(spec))

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        """The handles that are done (waits up to ``timeout`` for one)."""
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        return list(done)

    def result(self, handle: Any) -> LaunchResult:
        """The trial's launch result."""
        return LaunchResult(**self.ray.get(handle))

    def cancel(self, handles: list[Any]) -> None:
        """Interrupt running trials: each stops its script, which ends its run as killed."""
        for handle in handles:
            self.ray.cancel(handle)

    def close(self) -> None:
        """Disconnect from the cluster."""
        if self.ray is not None:
            self.ray.shutdown()


def _spec_dict(spec: LaunchSpec) -> dict[str, Any]:
    values = asdict(spec)
    values["script"] = str(spec.script)
    return values


def _trial_task(settings: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A Ray task: launch one trial locally on the node it was placed on."""
    from plinth._core.settings import Settings
    from plinth.workspace import Workspace

    launch_spec = LaunchSpec(**{**spec, "script": Path(spec["script"])})
    with Workspace(settings=Settings.model_construct(**settings)) as ws:
        return asdict(launch(ws, launch_spec, stopper=Stopper()))


class _Tracking:
    """Where a search records its runs: the workspace's catalog, or the server in remote mode."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.client: Any = None
        if ws.settings.url:
            from plinth.client.remote import RemoteClient

            self.client = RemoteClient(ws.settings.url, ws.settings.token or None)

    def start(self, spec: TuneSpec) -> Run | RemoteRun:
        """Start the parent run (a local ``Run``, or a ``RemoteRun`` on the server)."""
        from plinth.tracking.run import start_run

        experiment = spec.experiment or spec.script.stem
        tags = {"metric": spec.metric, "direction": spec.direction}
        launch = {
            "launcher": "tune",
            "entry_point": str(spec.script),
            "arguments": list(spec.args),
            "requested": {
                "trials": spec.trials,
                "parallel": spec.parallel,
                "cpus": spec.cpus or 1,
                "gpus": spec.gpus or 0,
                **({"memory": spec.memory} if spec.memory else {}),
                **({"address": spec.ray} if spec.ray is not None else {}),
            },
        }
        if self.client is not None:
            return self.client.start_run(
                experiment, params=spec.params, tags=tags, launch=launch, capture=True
            )
        return start_run(self.ws, experiment, params=spec.params, tags=tags, **launch)

    def objective(self, run_id: str, metric: str) -> float | None:
        """The last finite value of ``metric`` the run logged, or None."""
        if self.client is None:
            return objective(self.ws, run_id, metric)
        value = self.client.run(run_id).metrics.get(metric)
        return float(value) if value is not None and math.isfinite(value) else None

    def tag_best(self, run_id: str) -> None:
        """Tag the best trial's (already ended) run with ``best=true``."""
        if self.client is None:
            from plinth.tracking.run import tag_run

            tag_run(self.ws, run_id, {"best": "true"})
        else:
            self.client.tag_run(run_id, {"best": "true"})

    def close(self) -> None:
        """Close the connection to the server, if any."""
        if self.client is not None:
            self.client.close()


def tune(
    ws: Workspace,
    spec: TuneSpec,
    *,
    on_trial: Callable[[TrialResult], None] | None = None,
    on_start: Callable[[Run | RemoteRun], None] | None = None,
) -> TuneResult:
    """Run a search and return its trials and the best one.

    Example:
        >>> # result = tune(ws, TuneSpec(Path("mlp.py"), Path("space.yaml"), 10, "val_loss"))
        >>> # result.best.params
    """
    import optuna

    spec = replace(spec, script=spec.script.expanduser().resolve())
    spec.validate()
    space = load_space(spec.space)
    LaunchSpec(spec.script).validate()
    both = sorted(set(space) & set(spec.params))
    if both:
        raise ConfigError(
            f"Parameter(s) {', '.join(both)} are both fixed with --param and searched.",
            hint="Drop them from --param or from the search space.",
        )
    stopper = Stopper()
    runner: _LocalTrials | _RayTrials = (
        _RayTrials(ws, spec) if spec.ray is not None else _LocalTrials(ws, spec, stopper)
    )
    runner.prepare()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=spec.direction, sampler=optuna.samplers.TPESampler(seed=spec.seed)
    )
    meter = ResourceMeter(children=False)  # the trials are runs of their own
    tracking = _Tracking(ws)
    try:
        with stopper.installed():
            parent = tracking.start(spec)
            if on_start is not None:
                on_start(parent)
            try:
                parent.log_artifact(Path(spec.space), "space.yaml")
                trials = _search(tracking, spec, space, study, runner, stopper, parent.id, on_trial)
            except BaseException as exc:
                error = f"{type(exc).__name__}: {exc}"
                parent.end("failed", error, usage=meter.usage())
                raise
            finally:
                runner.close()
            return _conclude(tracking, spec, parent, trials, stopper, meter)
    finally:
        tracking.close()


def _search(
    tracking: _Tracking,
    spec: TuneSpec,
    space: dict[str, Dimension],
    study: Any,
    runner: _LocalTrials | _RayTrials,
    stopper: Stopper,
    parent_id: str,
    on_trial: Callable[[TrialResult], None] | None,
) -> list[TrialResult]:
    from optuna.trial import TrialState

    pending: dict[Any, tuple[Any, dict[str, Any]]] = {}
    results: list[TrialResult] = []
    asked = 0
    cancelled = False
    while asked < spec.trials or pending:
        while stopper.requested is None and asked < spec.trials and len(pending) < spec.parallel:
            trial = study.ask()
            sampled = {name: dim.suggest(trial) for name, dim in space.items()}
            handle = runner.submit(spec.trial_spec(sampled, parent_id, trial.number))
            pending[handle] = (trial, sampled)
            asked += 1
        if stopper.requested is not None and not cancelled:
            runner.cancel(list(pending))
            cancelled = True
        if not pending:
            break
        for handle in runner.wait(list(pending), timeout=0.25):
            trial, sampled = pending.pop(handle)
            outcome = _outcome(tracking, spec, runner, handle, trial.number, sampled)
            if outcome.value is not None:
                study.tell(trial, outcome.value)
            else:
                study.tell(trial, state=TrialState.FAIL)
            results.append(outcome)
            if on_trial is not None:
                on_trial(outcome)
    return sorted(results, key=lambda r: r.number)


def _outcome(
    tracking: _Tracking,
    spec: TuneSpec,
    runner: _LocalTrials | _RayTrials,
    handle: Any,
    number: int,
    sampled: dict[str, Any],
) -> TrialResult:
    try:
        launched = runner.result(handle)
    except Exception as exc:  # the trial's task itself broke (a cancelled or lost Ray task)
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return TrialResult(number, None, "failed", None, sampled, message)
    finished = launched.status == "finished"
    value = tracking.objective(launched.run_id, spec.metric) if finished else None
    status = launched.status
    error = launched.error
    if status == "finished" and value is None:
        status, error = "failed", f"the run logged no finite value of '{spec.metric}'"
    return TrialResult(number, launched.run_id, status, value, sampled, error)


def _conclude(
    tracking: _Tracking,
    spec: TuneSpec,
    parent: Run | RemoteRun,
    trials: list[TrialResult],
    stopper: Stopper,
    meter: ResourceMeter,
) -> TuneResult:
    completed = [t for t in trials if t.value is not None]
    best: TrialResult | None = None
    if completed:
        if spec.direction == "maximize":
            best = max(completed, key=lambda t: (t.value, -t.number))  # type: ignore[arg-type]
        else:
            best = min(completed, key=lambda t: (t.value, t.number))  # type: ignore[arg-type]
        tracking.tag_best(best.run_id)  # type: ignore[arg-type]
        parent.set_tags(
            {
                "best_run": best.run_id,
                "best_value": repr(best.value),
                "best_params": json.dumps(best.params, sort_keys=True),
                **{f"best.{k}": v for k, v in best.params.items()},
            }
        )
    error = None
    if stopper.requested is not None:
        status, exit_code = "killed", 128 + stopper.requested
        error = f"stopped by {signal.Signals(stopper.requested).name}"
    elif completed:
        status, exit_code = "finished", 0
    else:
        status, exit_code = "failed", 1
        error = f"no trial succeeded ({len(trials)} failed)"
    parent.end(status, error, usage=meter.usage())
    return TuneResult(parent.id, status, trials, best, exit_code)
