"""A tracked run: parameters, metrics, tags, artifacts, inputs, environment and resource use.

``ws.run("delay-model", params={...})`` starts a run, or, inside a process started by
``plinth train``, attaches to the run the launcher created (``PLINTH_RUN_ID``). Under DDP
every rank attaches; metrics, parameters, tags and artifacts are kept from rank 0 only (log
reduced values there), while each rank records its own resource use.

Ending: a ``with`` block ends the run as ``finished``, or ``failed`` with the error and the
traceback (kept as the artifact ``traceback.txt``) when the block raises. SIGTERM is turned
into ``SystemExit(143)`` in the main thread, so the block unwinds, flushes every queued point
and marks the run ``killed``. Runs still open at interpreter exit are flushed and ended too.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plinth._core.clock import utcnow
from plinth._core.ids import new_id
from plinth._core.urls import redact_arguments, redact_text, redact_value
from plinth.catalog.lineage import Node, add_edge
from plinth.catalog.models import Run as RunRecord
from plinth.catalog.models import RunArtifact, RunParam, RunResource, RunTag
from plinth.errors import ConfigError, ConflictError, RunNotFoundError
from plinth.tracking.checks import MAX_STEP, MIN_STEP, check_key, check_step, check_value
from plinth.tracking.environment import describe as describe_environment
from plinth.tracking.resources import ResourceMeter, Usage
from plinth.tracking.writer import MetricWriter

if TYPE_CHECKING:
    from plinth.workspace import Workspace

RUN_ID_ENV = "PLINTH_RUN_ID"
#: Set by a launcher that got no experiment name: the script's ``ws.run(name)`` gives it.
NAMED_BY_SCRIPT_ENV = "PLINTH_RUN_NAMED_BY_SCRIPT"
RANK_ENV = "RANK"
STATUSES = ("running", "finished", "failed", "killed")
_open_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_signal_lock = threading.Lock()
_terminated = threading.Event()


def _param_text(value: Any) -> tuple[str, float | None]:
    """A parameter's stored text, and its number when it is one (for filters and sorting)."""
    if isinstance(value, bool):
        return ("true" if value else "false"), float(value)
    if isinstance(value, int | float):
        return repr(value), float(value)
    if isinstance(value, str):
        try:
            return value, float(value)
        except ValueError:
            return value, None
    try:
        return json.dumps(value, sort_keys=True, default=str), None
    except (TypeError, ValueError):
        return str(value), None


def _on_sigterm(signum: int, frame: Any) -> None:
    # Unwind the main thread (so ``with`` blocks flush and end their runs) instead of doing
    # database work inside the handler, which could interrupt a lock holder.
    _terminated.set()
    raise SystemExit(128 + signum)


def _install_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    with _signal_lock:
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm or current not in (signal.SIG_DFL, None):
            return  # keep a handler the program installed itself (torchrun's agent, Ray...)
        signal.signal(signal.SIGTERM, _on_sigterm)


@atexit.register
def _end_open_runs() -> None:
    for run in list(_open_runs):
        with contextlib.suppress(Exception):  # exiting: nobody is left to tell
            run.end("killed" if _terminated.is_set() else "finished")


def exit_outcome(
    kind: type[BaseException] | None, exc: BaseException | None
) -> tuple[str, str | None]:
    """How leaving a run's ``with`` block ends it: ``(status, error summary or None)``.

    A clean exit or ``SystemExit(0)`` finishes it; Ctrl-C or another ``SystemExit`` kills it;
    any other exception fails it, with the exception (secrets masked) as the error.

    Example:
        >>> exit_outcome(ValueError, ValueError("boom"))
        ('failed', 'ValueError: boom')
    """
    if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
        return "finished", None
    killed = isinstance(exc, KeyboardInterrupt | SystemExit)
    summary = redact_text(f"{kind.__name__ if kind else 'Error'}: {exc}".strip())
    return ("killed" if killed else "failed"), summary


def traceback_text(
    kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> str:
    """The traceback a failed run keeps as ``traceback.txt``, with secrets masked.

    Example:
        >>> traceback_text(ValueError, ValueError("boom"), None).strip()
        'ValueError: boom'
    """
    return redact_text("".join(traceback.format_exception(kind, exc, tb)))


class Run:
    """One tracked run; use it as a context manager (see the module docstring).

    Example:
        >>> import plinth, tempfile
        >>> ws = plinth.Workspace(tempfile.mkdtemp())
        >>> with ws.run("demo", params={"lr": 0.1}, capture=False) as run:
        ...     run.log_metric("loss", 0.5, step=1)
        >>> ws.runs.get(run.id).status
        'finished'
    """

    def __init__(
        self,
        ws: Workspace,
        run_id: str,
        experiment: str,
        *,
        owner: bool,
        rank: int = 0,
    ) -> None:
        self.ws = ws
        self.id = run_id
        self.experiment = experiment
        self.rank = rank
        self.owner = owner
        self.status = "running"
        # A launched process's imports and data loading count toward its run.
        self._meter = ResourceMeter(since_start=not owner)
        # The last step logged per key set id (the writer's ids), for default steps; the
        # key set of the last log_metrics call with its id and packer; the id and packer
        # of each single key logged with log_metric.
        self._last_steps: list[int] = []
        self._current: tuple[tuple[str, ...], int, Callable[..., bytes]] = ((), -1, bytes)
        self._singles: dict[str, tuple[int, Callable[..., bytes]]] = {}
        self._params: dict[str, str] = {}
        self._writer: MetricWriter | None = MetricWriter(ws.catalog, run_id) if rank == 0 else None
        self._queue = self._writer.queue if self._writer is not None else None
        self._queue_limit = self._writer.max_buffered if self._writer is not None else 0
        self._ended = False
        _open_runs.add(self)
        _install_sigterm()

    # -- logging ---------------------------------------------------------------------------

    @property
    def logs(self) -> bool:
        """Whether this process's calls are recorded (rank 0 only under DDP)."""
        return self.rank == 0

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        """Queue one metric point; ``step`` defaults to the key's previous step plus one.

        NaN and infinities are stored as they are.

        Example:
            >>> # run.log_metric("loss", 0.25, step=10)
        """
        queue = self._queue
        if queue is None:
            return
        if type(value) is not float:
            value = check_value(key, value)
        try:
            kid, packer = self._singles[key]
        except (KeyError, TypeError):
            kid, packer = self._single(key)
        if type(step) is not int or not MIN_STEP <= step <= MAX_STEP:
            step = self._step(kid, step)
        self._last_steps[kid] = step
        # The writer's add() inlined: this is the hottest call in a training loop.
        queue.append(packer(kid, step, time.time_ns() // 1000, value))
        if len(queue) >= self._queue_limit:
            self._writer.flush()  # type: ignore[union-attr]

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Queue several metric points at one step (one queue entry for all of them).

        ``step`` defaults to one past the highest previous step of these keys.

        Example:
            >>> # run.log_metrics({"loss": 0.25, "auc": 0.71}, step=10)
        """
        queue = self._queue
        if queue is None or not metrics:
            return
        keys = tuple(metrics)
        # One attribute read: another thread logging to this run may switch it meanwhile.
        last, kid, packer = self._current
        if keys != last:
            kid, packer = self._switch(keys)
        if type(step) is not int or not MIN_STEP <= step <= MAX_STEP:
            step = self._step(kid, step)
        try:
            # Packing converts each value to a C double, which checks it: anything that is
            # not a number (text, None, a tensor of several elements) fails here.
            entry = packer(kid, step, time.time_ns() // 1000, *metrics.values())
        except Exception:
            values = [check_value(k, v) for k, v in metrics.items()]  # names the bad one
            entry = packer(kid, step, time.time_ns() // 1000, *values)
        self._last_steps[kid] = step
        queue.append(entry)
        if len(queue) >= self._queue_limit:
            self._writer.flush()  # type: ignore[union-attr]

    def _single(self, key: Any) -> tuple[int, Callable[..., bytes]]:
        """Register a key logged alone, once its name is checked."""
        found = self._register((check_key(key),))
        self._singles[key] = found
        return found

    def _switch(self, keys: tuple[Any, ...]) -> tuple[int, Callable[..., bytes]]:
        """Make ``keys`` the current key set of log_metrics; its names are checked when new."""
        if keys not in self._writer.key_set_ids:  # type: ignore[union-attr]
            for key in keys:
                check_key(key)
        kid, packer = self._register(keys)
        self._current = (keys, kid, packer)
        return kid, packer

    def _register(self, keys: tuple[str, ...]) -> tuple[int, Callable[..., bytes]]:
        kid, packer = self._writer.key_set(keys)  # type: ignore[union-attr]
        if kid >= len(self._last_steps):
            self._last_steps.extend([-1] * (kid + 1 - len(self._last_steps)))
        return kid, packer

    def _step(self, kid: int, step: Any) -> int:
        """The step of a call whose step is not a plain int in range: the default or a check."""
        keys = self._writer.key_sets[kid]  # type: ignore[union-attr]
        if step is None:
            return self._previous_step(keys) + 1
        return check_step(keys[0], step)

    def _previous_step(self, keys: tuple[str, ...]) -> int:
        """The highest last step of any key set sharing a key with ``keys`` (-1 for none)."""
        wanted = set(keys)
        key_sets = self._writer.key_sets  # type: ignore[union-attr]
        return max(
            (
                step
                for logged, step in zip(key_sets, self._last_steps, strict=False)
                if not wanted.isdisjoint(logged)
            ),
            default=-1,
        )

    def log_param(self, key: str, value: Any) -> None:
        """Record one parameter (see :meth:`log_params`)."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters; logging a parameter again with another value is an error.

        Example:
            >>> # run.log_params({"lr": 0.1, "depth": 6})
        """
        if not self.logs or not params:
            return
        # Secrets (passwords in URLs, tokens, values named like passwords) are masked.
        texts = {str(k): _param_text(redact_value(v, str(k))) for k, v in params.items()}
        with self.ws.catalog.session() as session:
            stored = {
                row.key: row.value
                for row in session.scalars(
                    select(RunParam).where(
                        RunParam.run_id == self.id, RunParam.key.in_(list(texts))
                    )
                )
            }
            for key, (value, number) in texts.items():
                if key in stored:
                    if stored[key] != value:
                        raise ConflictError(
                            f"Parameter '{key}' of run '{self.id}' is already {stored[key]!r}; "
                            f"it cannot become {value!r}.",
                            hint="Parameters are fixed once logged; start a new run, or log "
                            "the changing value as a metric or a tag.",
                        )
                    continue
                session.add(RunParam(run_id=self.id, key=key, value=value, number=number))
        self._params.update({k: v for k, (v, _) in texts.items()})

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag (see :meth:`set_tags`)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags; unlike parameters, a tag may be changed.

        Example:
            >>> # run.set_tags({"team": "ops", "best": "true"})
        """
        if self.logs:
            tag_run(self.ws, self.id, tags)

    def log_artifact(self, source: Any, name: str | None = None) -> str:
        """Store a file, a folder or an object as an artifact of the run; return its name.

        Files and folders keep their bytes; ``bytes`` and ``str`` are stored as they are;
        Arrow tables and pandas DataFrames as Parquet; dicts and lists as JSON; any other
        object is pickled (and then only loaded where its hash matches the catalog).

        Example:
            >>> # run.log_artifact("confusion.png"); run.log_artifact({"auc": 0.7}, "eval.json")
        """
        if not self.logs:
            return name or ""
        if isinstance(source, str | os.PathLike) and not isinstance(source, str):
            source = Path(source)
        if isinstance(source, Path):
            if source.is_dir():
                base = name or source.name
                for path in sorted(p for p in source.rglob("*") if p.is_file()):
                    self._store_file(path, f"{base}/{path.relative_to(source).as_posix()}")
                return base
            if not source.is_file():
                raise ConfigError(
                    f"The artifact '{source}' does not exist.",
                    hint="Pass an existing file or folder, or an object to store.",
                )
            return self._store_file(source, name or source.name)
        if name is None:
            raise ConfigError(
                f"An artifact made from a {type(source).__name__} needs a name.",
                hint="Pass name='model.pkl' (or any file name).",
            )
        data, kind = _serialize(source)
        ref = self.ws.artifacts.put_bytes(data)
        self._record_artifact(name, kind, ref.digest, ref.size)
        return name

    def _store_file(self, path: Path, name: str) -> str:
        ref = self.ws.artifacts.put_file(path)
        self._record_artifact(name, "file", ref.digest, ref.size)
        return name

    def _record_artifact(self, name: str, kind: str, digest: str, size: int) -> None:
        from plinth.storage.keys import safe_key

        safe_key(name)
        with self.ws.catalog.session() as session:
            session.merge(
                RunArtifact(
                    run_id=self.id, name=name, kind=kind, digest=digest, size=size,
                    created_at=utcnow(),
                )
            )  # fmt: skip

    def log_model(self, model: Any, name: str, **options: Any) -> Any:
        """Register ``model`` as a new version of the registry model ``name``, linked to this
        run (see :func:`plinth.registry.log_model` for the options).

        Example:
            >>> # version = run.log_model(booster, "delay", features="delay", example=frame[:5])
        """
        from plinth.registry import log_model

        return log_model(self, model, name, **options)

    def use(self, source: Any) -> str:
        """Record an input of the run: a training set, or a lake table at a version.

        Accepts a training-set result, ``"training_set:<id>"``, ``"table@N"`` or ``"table"``
        (its current version, recorded exactly). Returns the input's lineage id.

        Example:
            >>> # run.use(training_set); run.use("flights@3")
        """
        node = self._input_node(source)
        with self.ws.catalog.session() as session:
            add_edge(session, node, Node("run", self.id), "input_of")
        return str(node)

    def _input_node(self, source: Any) -> Node:
        from plinth.catalog.models import TrainingSet

        reference = getattr(source, "ref", None) if not isinstance(source, str) else source
        if not isinstance(reference, str):
            raise ConfigError(
                f"Cannot use a {type(source).__name__} as a run input.",
                hint="Pass a training set (ws.features.historical(...)), 'training_set:<id>' "
                "or 'table@version'.",
            )
        if reference.startswith("training_set:") or reference.startswith("ts_"):
            training_set = reference.removeprefix("training_set:")
            with self.ws.catalog.session() as session:
                if session.get(TrainingSet, training_set) is None:
                    raise RunNotFoundError(
                        f"No training set '{training_set}' is in the catalog.",
                        hint="Build it with ws.features.historical(...) (record=True).",
                    )
            return Node("training_set", training_set)
        name, _, version = reference.partition("@")
        info = self.ws.lake.version(name, int(version) if version.strip().isdigit() else None)
        if version and not version.strip().isdigit():
            raise ConfigError(
                f"'{reference}' does not name a table version.",
                hint="Write 'table@N' with N a version number, or just 'table'.",
            )
        return Node("table_version", f"{name}@{info.version}")

    # -- ending ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every queued metric point now."""
        if self._writer is not None:
            self._writer.flush()

    def end(
        self,
        status: str = "finished",
        error: str | None = None,
        *,
        usage: Usage | None = None,
        record_usage: bool = True,
    ) -> None:
        """Flush, record resource use, and (for the run's owner, or on failure) its status.

        ``usage`` replaces this process's measured use (a launcher passes its child's);
        ``record_usage=False`` records none (the script recorded its own).

        Example:
            >>> # run.end("failed", error="diverged")
        """
        if self._ended:
            return
        if status not in STATUSES:
            raise ConfigError(
                f"'{status}' is not a run status.", hint=f"Use one of: {', '.join(STATUSES)}."
            )
        self._ended = True
        _open_runs.discard(self)
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            if usage is None and record_usage:
                usage = self._meter.usage()
            with self.ws.catalog.session() as session:
                if usage is not None:
                    session.merge(
                        RunResource(
                            run_id=self.id,
                            rank=self.rank,
                            recorded_at=utcnow(),
                            **usage.as_dict(),
                        )
                    )
                record = session.get(RunRecord, self.id)
                settles = self.owner or status != "finished"
                if (
                    record is not None
                    and settles
                    and (record.status == "running" or status != "finished")
                ):
                    record.status = status
                    record.error = redact_text(error) if error else record.error
                    if self.owner:
                        record.ended_at = utcnow()
                    from plinth.tracking.service import audit_run_end

                    audit_run_end(session, record, self.ws.settings.user)
            self.status = status
            if self.owner and self.ws.settings.openlineage_url:
                from plinth.governance.openlineage import training_event

                training_event(self.ws, self.id, status)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status, summary = exit_outcome(kind, exc)
        if summary is None:
            self.end(status)
            return
        text = traceback_text(kind, exc, tb)
        try:
            if self.logs:
                self.log_artifact(text, "traceback.txt")
        finally:
            self.end(status, error=summary)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, experiment={self.experiment!r}, status={self.status!r})"


def rename_experiment(ws: Workspace, run_id: str, experiment: str) -> str:
    """Move a run to ``experiment`` (a launched script names it when its launcher did not);
    a name that is empty or over 128 characters is ignored. Returns the run's experiment.

    Example:
        >>> # rename_experiment(ws, run.id, "delay-model")
    """
    with ws.catalog.session() as session:
        record = session.get(RunRecord, run_id)
        if record is None:
            raise RunNotFoundError(
                f"No run '{run_id}' is in the catalog.",
                hint="Check the id with 'plinth runs list'.",
            )
        if experiment and len(experiment) <= 128:
            record.experiment = experiment
        return str(record.experiment)


def tag_run(ws: Workspace, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on any run, open or ended (a tag may change; a parameter may not).

    Example:
        >>> # tag_run(ws, "run_01H...", {"best": "true"})
    """
    if not tags:
        return
    with ws.catalog.session() as session:
        if session.get(RunRecord, run_id) is None:
            raise RunNotFoundError(
                f"No run '{run_id}' is in the catalog.",
                hint="Check the id with 'plinth runs list'.",
            )
        for key, value in tags.items():
            masked = redact_value(value, str(key))
            session.merge(RunTag(run_id=run_id, key=str(key), value=str(masked)))


def current_run() -> Run | None:
    """The open run of this process: the launcher's (``PLINTH_RUN_ID``), else the newest.

    Example:
        >>> current_run() is None or current_run().status == "running"
        True
    """
    wanted = os.environ.get(RUN_ID_ENV)
    open_runs = sorted((r for r in list(_open_runs) if r.status == "running"), key=lambda r: r.id)
    if wanted:
        open_runs = [r for r in open_runs if r.id == wanted]
    return open_runs[-1] if open_runs else None


def _serialize(source: Any) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "bytes"
    if isinstance(source, str):
        return source.encode("utf-8"), "text"
    if isinstance(source, dict | list):
        return json.dumps(source, indent=2, sort_keys=True, default=str).encode(), "json"
    module = type(source).__module__
    if module.startswith("pyarrow") or module.startswith("pandas"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = source if isinstance(source, pa.Table) else pa.Table.from_pandas(source)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return buffer.getvalue(), "parquet"
    import pickle

    return pickle.dumps(source, protocol=pickle.HIGHEST_PROTOCOL), "pickle"


def start_run(
    ws: Workspace,
    experiment: str,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent: str | None = None,
    launcher: str = "local",
    entry_point: str | None = None,
    arguments: list[str] | None = None,
    requested: Mapping[str, Any] | None = None,
    capture: bool = True,
    environment: Mapping[str, Any] | None = None,
) -> Run:
    """Create a run in the catalog and return its handle (this process owns it).

    ``environment`` is what another process captured about itself (a remote client's
    :func:`~plinth.tracking.environment.describe`), stored instead of capturing this one's.

    Example:
        >>> # run = start_run(ws, "delay-model", launcher="torchrun", requested={"cpus": 4})
    """
    if not experiment or len(experiment) > 128:
        raise ConfigError(
            f"'{experiment}' is not a usable experiment name.",
            hint="Use a short name of 1 to 128 characters, like 'delay-model'.",
        )
    run_id = new_id("run_")
    env: dict[str, Any] | None = None
    diff = None
    if environment is not None:
        env = dict(environment)
    elif capture:
        env, diff = describe_environment(entry_point, arguments)
    with ws.catalog.session() as session:
        if parent is not None and session.get(RunRecord, parent) is None:
            raise RunNotFoundError(
                f"No run '{parent}' to be the parent of a new run.",
                hint="Check the id with 'plinth runs list'.",
            )
        row = RunRecord(
            id=run_id,
            experiment=experiment,
            status="running",
            parent_id=parent,
            launcher=launcher,
            entry_point=(env or {}).get(
                "entry_point", redact_text(entry_point) if entry_point else entry_point
            ),
            arguments=(env or {}).get(
                "arguments", redact_arguments(list(arguments)) if arguments else arguments
            ),
            environment=env,
            requested=dict(requested) if requested else None,
            started_at=utcnow(),
            created_by=ws.settings.user,
        )
        session.add(row)
        from plinth.tracking.service import audit_run_start

        audit_run_start(session, row)
    run = Run(ws, run_id, experiment, owner=True)
    if diff:
        run.log_artifact(diff, "git.diff")
    run.log_params(params or {})
    run.set_tags(tags or {})
    if ws.settings.openlineage_url:
        from plinth.governance.openlineage import training_event

        training_event(ws, run_id)
    return run


def attach_run(ws: Workspace, run_id: str, *, rank: int | None = None) -> Run:
    """Attach to a run another process created (the launcher), as one of its ranks.

    Example:
        >>> # run = attach_run(ws, os.environ["PLINTH_RUN_ID"])
    """
    with ws.catalog.session() as session:
        record = session.get(RunRecord, run_id)
        if record is None:
            raise RunNotFoundError(
                f"No run '{run_id}' is in the catalog ({RUN_ID_ENV} names it).",
                hint="Start the script with 'plinth train', or unset PLINTH_RUN_ID.",
            )
        experiment = record.experiment
    if rank is None:
        rank = int(os.environ.get(RANK_ENV, "0") or 0)
    return Run(ws, run_id, experiment, owner=False, rank=rank)


def run(
    ws: Workspace,
    experiment: str,
    params: Mapping[str, Any] | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    parent: str | None = None,
    capture: bool = True,
) -> Run:
    """Start a run, or attach to the launcher's run when ``PLINTH_RUN_ID`` is set.

    Attached, ``experiment`` names the run's experiment when the launcher was given none.

    Example:
        >>> # with ws.run("delay-model", params={"lr": 0.1}) as run: ...
    """
    launched = os.environ.get(RUN_ID_ENV)
    if launched:
        attached = attach_run(ws, launched)
        if os.environ.get(NAMED_BY_SCRIPT_ENV) == "1" and attached.logs:
            attached.experiment = rename_experiment(ws, attached.id, experiment)
        attached.log_params(params or {})
        attached.set_tags(tags or {})
        return attached
    return start_run(ws, experiment, params=params, tags=tags, parent=parent, capture=capture)
