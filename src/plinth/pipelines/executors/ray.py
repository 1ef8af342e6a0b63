"""The Ray executor: each step attempt is a Ray task with the step's CPUs, GPUs and memory.

Tasks read their inputs from and write their outputs to the workspace's artifact store, so
every Ray node must reach it (the same disk on one machine, or S3-compatible storage). The
step's function travels by value (cloudpickle), with the user modules it lives in, so the
workers need Plinth and the libraries the steps import, not the pipeline's source files.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError, PipelineError
from plinth.pipelines.executors import Executor
from plinth.pipelines.hashing import is_user_module
from plinth.pipelines.steps import Step
from plinth.pipelines.worker import Outcome, StepCall, execute_captured

if TYPE_CHECKING:
    from plinth.pipelines.dag import Dag
    from plinth.workspace import Workspace

__all__ = ["RAY_ADDRESS_ENV", "RayExecutor"]

#: Where the Ray cluster is when no address is given (then ``RAY_ADDRESS``, then a local one).
RAY_ADDRESS_ENV = "PLINTH_RAY_ADDRESS"


def _ship(step: Step) -> dict[str, Any]:
    """A step as plain fields, so its function is pickled by value rather than by name."""
    return {f.name: getattr(step, f.name) for f in fields(step)}


def _ray_step(step_fields: dict[str, Any], call: StepCall) -> Outcome:
    """The Ray task: rebuild the step, run the attempt with its output captured."""
    return execute_captured(replace(call, step=Step(**step_fields)))


def require_ray() -> Any:
    """Import Ray, or explain how to install it.

    Example:
        >>> # ray = require_ray()
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "The Ray executor needs Ray, which is not installed.",
            hint="Install it with: pip install 'plinth-ai[ray]'.",
        ) from exc
    return ray


class RayExecutor(Executor):
    """Run step attempts as Ray tasks on a Ray cluster.

    ``address`` defaults to ``PLINTH_RAY_ADDRESS``, then ``RAY_ADDRESS``; with neither, a
    local Ray instance is started for the run. A process already connected to Ray keeps its
    connection.

    Example:
        >>> RayExecutor(address="127.0.0.1:6379").address
        '127.0.0.1:6379'
    """

    name = "ray"

    def __init__(self, *, address: str | None = None) -> None:
        self.address = address or os.environ.get(RAY_ADDRESS_ENV) or os.environ.get("RAY_ADDRESS")
        self.ray: Any = None
        self._started = False
        self._task: Any = None
        self.pending: dict[Any, StepCall] = {}

    def _connect(self) -> Any:
        if self.ray is not None:
            return self.ray
        ray = require_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
            if self.address:
                options["address"] = self.address
            else:
                options["include_dashboard"] = False
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(
                    f"Cannot connect to a Ray cluster at '{self.address or 'a new local one'}': "
                    f"{exc}",
                    hint="Start one with 'ray start --head' and pass its address "
                    f"(--ray-address HOST:PORT, or {RAY_ADDRESS_ENV}).",
                ) from exc
            self._started = True
        self.ray = ray
        self._task = ray.remote(_ray_step)
        return ray

    def check(self, dag: Dag) -> None:
        """Connect, and reject steps that ask for more than the whole cluster has."""
        ray = self._connect()
        total = ray.cluster_resources()
        have = {"cpu": total.get("CPU", 0), "gpu": total.get("GPU", 0)}
        have["memory"] = total.get("memory", 0)
        for node in dag.nodes.values():
            asked = node.step.resources
            for key, value in (("cpu", asked.cpu), ("gpu", asked.gpu), ("memory", asked.memory)):
                if value and value > have[key]:
                    raise PipelineError(
                        f"Step '{node.name}' asks for {key}={value}, more than the Ray cluster "
                        f"has ({have[key]:g}); it could never start.",
                        hint="Lower its Resources, or add nodes to the cluster.",
                    )
            module = node.step.fn.__module__
            if is_user_module(module) and module not in ("__main__", "__mp_main__"):
                import sys

                with contextlib.suppress(Exception):
                    ray.cloudpickle.register_pickle_by_value(sys.modules[module])

    def open(self, ws: Workspace) -> None:
        """Connect to the cluster (done already by :meth:`check`)."""
        self._connect()

    def submit(self, call: StepCall) -> None:
        """Start the attempt as a Ray task with the step's resources."""
        resources = call.step.resources
        options: dict[str, Any] = {
            "num_cpus": resources.cpu,
            "num_gpus": resources.gpu,
            "max_retries": 0,
            "name": f"plinth:{call.node}",
        }
        if resources.memory:
            options["memory"] = resources.memory
        shipped = replace(call, step=None)  # type: ignore[arg-type]
        ref = self._task.options(**options).remote(_ship(call.step), shipped)
        self.pending[ref] = call

    def wait(self, timeout: float | None) -> list[Outcome]:
        """Return the attempts whose tasks ended, waiting up to ``timeout`` seconds."""
        if not self.pending:
            if timeout:
                time.sleep(timeout)
            return []
        refs = list(self.pending)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        outcomes = []
        for ref in ready:
            call = self.pending.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except Exception as exc:  # the worker died, or Ray could not run the task
                outcome = Outcome(
                    call.node,
                    call.attempt,
                    False,
                    error=f"The Ray task of step '{call.node}' failed: {type(exc).__name__}: "
                    f"{exc}\n",
                )
            outcomes.append(outcome)
        return outcomes

    def cancel(self) -> None:
        """Cancel every task still running."""
        for ref in list(self.pending):
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self.pending.clear()

    def close(self) -> None:
        """Disconnect if this executor connected (or started Ray) itself."""
        if self.pending:
            self.cancel()
        if self._started and self.ray is not None:
            self.ray.shutdown()
            self._started = False
