"""The Ray launcher: the script as Ray Train's ``train_loop_per_worker`` on a Ray cluster.

A ``TorchTrainer`` starts ``--workers`` workers (each with ``--cpus``/``--gpus``/``--memory``)
and initialises ``torch.distributed`` among them. Each worker runs the unchanged script with
``runpy`` (``sys.argv`` set, ``PLINTH_RUN_ID`` and ``RANK`` = its world rank in the
environment), so ``ws.run(...)`` attaches to the launcher's run. Ray's results go to a folder
under the workspace home; checkpoints reported to Ray become run artifacts.

The script must be readable at the same path on every node (one machine, or a shared
filesystem) and the workspace reachable from the workers: a shared catalog and storage URL
for a multi-node cluster, or in remote mode (``PLINTH_URL``) the server, which the workers
then record through. The environment handed to the workers (tokens, catalog passwords, the
lake key) travels by object reference rather than inside the loop's configuration, which
Ray keeps with the job (and Ray Train's first version wrote to the results folder).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError
from plinth.training.process import Outcome, OutputTail, Stopper

if TYPE_CHECKING:
    from plinth.tracking.run import Run
    from plinth.training.launcher import LaunchSpec
    from plinth.workspace import Workspace

RESULTS_DIR = "ray"


def require_ray() -> Any:
    """Import Ray, or explain how to install it.

    Example:
        >>> # ray = require_ray()
    """
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "--ray needs Ray, which is not installed.",
            hint="Install it with: pip install 'plinth-ai[ray]'.",
        )
    import ray

    return ray


def connect(address: str, *, log_to_driver: bool = True) -> Any:
    """Connect this process to the Ray cluster at ``address`` (``auto``: the local one).

    Already connected, it keeps that connection.

    Example:
        >>> # ray = connect("127.0.0.1:6379")
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=log_to_driver)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"Cannot connect to a Ray cluster at '{address}': {exc}",
            hint="Start one with 'ray start --head', or pass its address: --ray HOST:PORT "
            "(or set PLINTH_RAY_ADDRESS).",
        ) from exc
    return ray


class _Tee:
    """A text stream that also feeds what is written to an :class:`OutputTail`."""

    def __init__(self, stream: Any, tail: OutputTail) -> None:
        self._stream = stream
        self._tail = tail

    def write(self, text: str) -> int:
        self._tail.feed(text.encode("utf-8", errors="replace"))
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _teed(tail: OutputTail) -> Iterator[None]:
    """Keep the tail of what Ray prints for the workers while the training runs."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(sys.stdout, tail), _Tee(sys.stderr, tail)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


class RayBackend:
    """Run the script as a Ray Train ``TorchTrainer`` job.

    Example:
        >>> # RayBackend(ws, LaunchSpec(Path("train.py"), ray="auto", workers=2))
    """

    def __init__(self, ws: Workspace, spec: LaunchSpec) -> None:
        self.ws = ws
        self.spec = spec
        self._connected = False

    def prepare(self) -> None:
        """Check for Ray and Ray Train, then connect to the cluster."""
        require_ray()
        if (
            importlib.util.find_spec("ray.train") is None
            or importlib.util.find_spec("torch") is None
        ):
            raise ConfigError(
                "--ray runs the script with Ray Train's TorchTrainer, which needs Ray Train "
                "and PyTorch.",
                hint="Install them with: pip install 'plinth-ai[ray,torch]'.",
            )
        import ray

        self._connected = not ray.is_initialized()  # leave a connection the caller made
        connect(self.spec.ray or "auto")
        self._warn_if_too_small(ray)

    def _warn_if_too_small(self, ray: Any) -> None:
        """Say so when the cluster (as it is now) cannot place every worker."""
        scaling = self.scaling()
        available = ray.cluster_resources()
        for resource, amount in scaling["resources_per_worker"].items():
            needed = amount * scaling["num_workers"]
            if available.get(resource, 0) < needed:
                print(
                    f"Warning: {scaling['num_workers']} workers need {needed:g} {resource} in "
                    f"all, and the Ray cluster has {available.get(resource, 0):g} now; "
                    "training waits until the cluster grows.",
                    file=sys.stderr,
                )

    def scaling(self) -> dict[str, Any]:
        """The ``ScalingConfig`` arguments for the spec's workers and resources."""
        gpus = self.spec.gpus or 0
        per_worker: dict[str, float] = {"CPU": float(self.spec.cpus or 1)}
        if gpus > 0:
            per_worker["GPU"] = float(gpus)
        if self.spec.memory is not None:
            per_worker["memory"] = float(self.spec.memory)
        return {
            "num_workers": self.spec.workers or 1,
            "use_gpu": gpus > 0,
            "resources_per_worker": per_worker,
        }

    def execute(self, run: Run, env: dict[str, str], stopper: Stopper) -> Outcome:
        """Fit the trainer; a stop interrupts it (the workers are then ended by Ray)."""
        import ray
        import ray.train
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        worker_env = {k: v for k, v in env.items() if k.startswith(("PLINTH_", "OMP_"))}
        worker_env["PYTHONUNBUFFERED"] = "1"
        config = {
            "script": str(self.spec.script),
            "args": list(self.spec.args),
            # By reference: Ray Train keeps its loop config with the results, and the
            # environment holds secrets (a server token, catalog passwords, the lake key).
            "env": ray.put(worker_env),
            "cwd": os.getcwd(),
        }
        storage = self.ws.home / RESULTS_DIR
        storage.mkdir(parents=True, exist_ok=True)
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config=config,
            scaling_config=ScalingConfig(**self.scaling()),
            run_config=RunConfig(name=run.id, storage_path=str(storage)),
        )
        tail = OutputTail()

        def interrupt(signum: int) -> None:
            raise KeyboardInterrupt

        remove = stopper.on_stop(interrupt)
        try:
            if stopper.requested is not None:  # stopped before the job started
                raise KeyboardInterrupt
            with _teed(tail):
                result = trainer.fit()
        except KeyboardInterrupt:
            return Outcome(128 + (stopper.requested or 2), stopper.requested or 2, tail)
        except Exception as exc:  # the job failed (a worker raised), or Ray itself did
            if not isinstance(exc, ray.train.TrainingFailedError):
                import traceback

                traceback.print_exc(file=sys.stderr)
            lines = [line for line in str(exc).strip().splitlines() if line.strip()]
            detail = lines[-1] if lines else type(exc).__name__
            return Outcome(1, None, tail, error=f"Ray Train failed: {detail}")
        finally:
            remove()
            if self._connected:
                with contextlib.suppress(Exception):
                    ray.shutdown()
        store_checkpoints(run, result)
        return Outcome(0, None, tail)


def store_checkpoints(run: Run, result: Any) -> list[str]:
    """Store the checkpoints Ray kept as run artifacts ``checkpoints/<folder>``.

    Checkpoints made by :func:`plinth.training.save_checkpoint` are already artifacts (under
    the name given there) and are skipped.

    Example:
        >>> # store_checkpoints(run, trainer.fit())
    """
    from plinth.training.checkpoint import LOGGED_MARKER

    kept = [c for c, _ in (getattr(result, "best_checkpoints", None) or [])]
    if not kept and getattr(result, "checkpoint", None) is not None:
        kept = [result.checkpoint]
    names = []
    for checkpoint in kept:
        with checkpoint.as_directory() as folder:
            path = Path(folder)
            if (path / LOGGED_MARKER).exists():
                continue
            names.append(run.log_artifact(path, f"checkpoints/{Path(checkpoint.path).name}"))
    return names


def _train_worker(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: run the script as ``__main__`` in this worker."""
    import runpy

    import ray.train

    context = ray.train.get_context()
    rank = context.get_world_rank()
    env = ray.get(config["env"])
    os.environ.update(env)
    os.environ["RANK"] = str(rank)
    os.environ["WORLD_SIZE"] = str(context.get_world_size())
    os.environ["LOCAL_RANK"] = str(context.get_local_rank())
    script = config["script"]
    if os.path.isdir(config["cwd"]):
        os.chdir(config["cwd"])
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script, *config["args"]]
    sys.path.insert(0, str(Path(script).parent))
    from plinth.tracking.resources import ResourceMeter

    meter = ResourceMeter()
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"The script exited with code {exc.code} on rank {rank}.") from None
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        _record_usage(env.get("PLINTH_RUN_ID", ""), rank, meter)


def _record_usage(run_id: str, rank: int, meter: Any) -> None:
    """Record this worker's resource use unless the script's run already did (in the
    catalog, or on the server in remote mode)."""
    if not run_id:
        return
    from plinth._core.clock import utcnow
    from plinth.catalog.models import RunResource
    from plinth.workspace import Workspace

    try:
        with Workspace() as ws:
            if ws.settings.url:
                _record_usage_remote(ws, run_id, rank, meter)
                return
            with ws.catalog.session() as session:
                if session.get(RunResource, (run_id, rank)) is None:
                    usage = meter.usage().as_dict()
                    session.add(
                        RunResource(run_id=run_id, rank=rank, recorded_at=utcnow(), **usage)
                    )
    except Exception as exc:  # the script's own outcome matters more than its cost record
        print(f"Could not record the resource use of rank {rank}: {exc}", file=sys.stderr)


def _record_usage_remote(ws: Workspace, run_id: str, rank: int, meter: Any) -> None:
    from plinth.client.remote import RemoteClient
    from plinth.client.runs import RemoteRun

    with RemoteClient(ws.settings.url, ws.settings.token or None) as client:
        detail = client.run(run_id)
        if any(r.rank == rank for r in detail.resources):
            return
        # As an attached rank: the usage is recorded, the launcher ends the run.
        handle = RemoteRun(client, run_id, detail.experiment, attached=True, rank=rank)
        handle.end("finished", usage=meter.usage())
