"""A run recorded through the control-plane server, with metric points sent in batches.

Points are buffered in the process and posted to ``POST /api/v1/runs/{id}/metrics`` when
``batch_size`` of them are waiting, every ``interval_s`` seconds (a background thread), when
:meth:`RemoteRun.flush` or :meth:`RemoteRun.end` is called, when the ``with`` block is left
(a raising block ends the run ``failed`` with the error), and at interpreter exit for runs
still open. A batch that cannot be sent stays in the buffer and goes with the next one; the
buffer is bounded: past ``max_buffered`` points, logging waits for a send to succeed (and
raises its error) rather than dropping points.

Training scripts get one too: with ``PLINTH_URL`` set, ``ws.run(...)`` returns a
:class:`RemoteRun` (:func:`open_run`) with the methods of a local run that scripts use:
artifacts are uploaded to the server's artifact store, inputs (``run.use``) recorded as
lineage on the server, models registered there (``run.log_model``: packaged here, files
uploaded), and the process's resource use sent with the end. Under ``plinth
train`` (``PLINTH_RUN_ID``) it attaches to the launcher's run instead of starting one. A run
opened by ``ws.run`` is ended at interpreter exit (as a local run is); one from
``client.start_run`` is only flushed.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from plinth.client.base import RunHandle
from plinth.errors import ConfigError
from plinth.tracking.checks import check_key, check_step, check_value
from plinth.tracking.resources import ResourceMeter

if TYPE_CHECKING:
    from plinth._core.settings import Settings
    from plinth.client.remote import RemoteClient
    from plinth.registry import ModelVersionInfo
    from plinth.tracking.resources import Usage

__all__ = ["BATCH_SIZE", "INTERVAL_S", "RemoteRun", "open_run"]

logger = logging.getLogger(__name__)

#: Points sent per request at most, and the most seconds a point waits in the buffer.
BATCH_SIZE, INTERVAL_S = 500, 5.0
STATUSES = ("finished", "failed", "killed")

_open: weakref.WeakSet[RemoteRun] = weakref.WeakSet()


def _value(key: str, value: Any) -> float:
    return value if type(value) is float else check_value(key, value)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values JSON can carry: numbers, text and booleans as they are, anything else as text."""
    return {
        str(k): v if v is None or isinstance(v, bool | int | float | str) else str(v)
        for k, v in values.items()
    }


class RemoteRun(RunHandle):
    """A run on a control-plane server; metric points are sent in batches.

    Example:
        >>> # with RemoteClient(url, token).start_run("demo") as run:
        >>> #     for step in range(1000):
        >>> #         run.log_metric("loss", 1 / (step + 1))   # sent 500 points at a time
    """

    def __init__(
        self,
        client: RemoteClient,
        run_id: str,
        experiment: str,
        *,
        batch_size: int = BATCH_SIZE,
        interval_s: float = INTERVAL_S,
        max_buffered: int | None = None,
        attached: bool = False,
        rank: int = 0,
        own_client: bool = False,
        end_at_exit: bool = False,
    ) -> None:
        if batch_size < 1 or interval_s <= 0:
            raise ConfigError(
                f"A batch size of {batch_size} or an interval of {interval_s} s is not usable.",
                hint="Give a batch size of 1 or more and an interval above 0 seconds.",
            )
        self.client = client
        self.id = run_id
        self.experiment = experiment
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_buffered = max_buffered or 20 * batch_size
        self._status = "running"
        self._buffer: list[dict[str, Any]] = []
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()  # guards the buffer and the steps
        self._send_lock = threading.Lock()  # one batch in flight at a time, in order
        self._wake = threading.Event()
        self._stopped = False
        #: A script that joined a launcher's run: the launcher ends it (see :meth:`end`).
        self.attached = attached
        #: The process's rank under torchrun: only rank 0 logs; every rank records its usage.
        self.rank = rank
        self._own_client = own_client
        self._end_at_exit = end_at_exit
        # A launched process's imports and data loading count toward its run, as locally.
        self._meter = ResourceMeter(since_start=attached)
        self._thread = threading.Thread(
            target=self._flush_loop, name=f"plinth-run-{run_id}", daemon=True
        )
        self._thread.start()
        _open.add(self)

    @property
    def status(self) -> str:
        """``running`` until :meth:`end`, then the status recorded."""
        return self._status

    @property
    def logs(self) -> bool:
        """Whether this process's calls are recorded (rank 0 only under DDP)."""
        return self.rank == 0

    # -- logging ---------------------------------------------------------------------------

    def _next_step(self, keys: tuple[str, ...]) -> int:
        return max((self._steps.get(k, -1) for k in keys), default=-1) + 1

    def _add(self, points: list[dict[str, Any]]) -> None:
        self._check_open()
        with self._lock:
            self._buffer.extend(points)
            waiting = len(self._buffer)
        if waiting >= self.max_buffered:
            self.flush()  # backpressure: wait for the server rather than grow without bound
        elif waiting >= self.batch_size:
            self._flush_some(raise_errors=False)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Buffer one metric point; ``step`` defaults to the key's previous step plus one.

        Example:
            >>> # run.log_metric("loss", 0.25, step=10)
        """
        if not self.logs:
            return
        value = _value(check_key(key), value)
        with self._lock:
            step = self._next_step((key,)) if step is None else check_step(key, step)
            self._steps[key] = step
        self._add([{"key": key, "value": value, "step": step, "timestamp": time.time()}])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Buffer several metric points at one step (one past their highest by default).

        Example:
            >>> # run.log_metrics({"loss": 0.25, "auc": 0.71}, step=10)
        """
        if not metrics or not self.logs:
            return
        values = {check_key(k): _value(k, v) for k, v in metrics.items()}
        now = time.time()
        with self._lock:
            step = (
                self._next_step(tuple(values))
                if step is None
                else check_step(next(iter(values)), step)
            )
            for key in values:
                self._steps[key] = step
        self._add(
            [{"key": k, "value": v, "step": step, "timestamp": now} for k, v in values.items()]
        )

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters now (one request).

        Example:
            >>> # run.log_params({"lr": 0.1, "depth": 6})
        """
        self._check_open()
        if params and self.logs:
            self.client._post(f"/runs/{self.id}/params", {"params": _plain(params)})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags now (one request).

        Example:
            >>> # run.set_tags({"team": "ops"})
        """
        self._check_open()
        if tags and self.logs:
            self.client._post(f"/runs/{self.id}/tags", {"tags": _plain(tags)})

    def log_artifact(self, source: Any, name: str | None = None) -> str:
        """Upload a file, a folder or an object as an artifact of the run; return its name.

        The same forms as :meth:`plinth.tracking.Run.log_artifact`: a path (``Path``) keeps
        its bytes, a folder uploads each file under ``name/``; ``bytes`` and ``str`` are
        stored as they are, tables as Parquet, dicts and lists as JSON, anything else
        pickled. One request per file; the server refuses one above its limit (413).

        Example:
            >>> # run.log_artifact(Path("confusion.png")); run.log_artifact(b"...", "raw.bin")
        """
        self._check_open()
        if not self.logs:
            return name or ""
        if isinstance(source, os.PathLike) and not isinstance(source, str):
            source = Path(source)
        if isinstance(source, Path):
            if source.is_dir():
                base = name or source.name
                for path in sorted(p for p in source.rglob("*") if p.is_file()):
                    rel = path.relative_to(source).as_posix()
                    self._upload(f"{base}/{rel}", path.read_bytes(), "file")
                return base
            if not source.is_file():
                raise ConfigError(
                    f"The artifact '{source}' does not exist.",
                    hint="Pass an existing file or folder, or an object to store.",
                )
            target = name or source.name
            self._upload(target, source.read_bytes(), "file")
            return target
        if name is None:
            raise ConfigError(
                f"An artifact made from a {type(source).__name__} needs a name.",
                hint="Pass name='model.pkl' (or any file name).",
            )
        from plinth.tracking.run import _serialize

        if isinstance(source, bytearray | memoryview):
            source = bytes(source)
        data, kind = _serialize(source)
        self._upload(name, data, kind)
        return name

    def _upload(self, name: str, data: bytes, kind: str) -> None:
        from plinth.storage.keys import safe_key

        safe_key(name)
        self.client._upload(
            f"/runs/{self.id}/artifacts/{quote(name, safe='/')}", data, {"kind": kind}
        )

    def use(self, source: Any) -> str:
        """Record an input of the run on the server; return its lineage id.

        Accepts ``"table@N"``, ``"table"`` (its current version on the server, recorded
        exactly), ``"training_set:<id>"`` or a training-set result (by its reference; the
        server must hold that training set).

        Example:
            >>> # run.use("flights@3")
        """
        self._check_open()
        reference = source if isinstance(source, str) else getattr(source, "ref", None)
        if not isinstance(reference, str):
            raise ConfigError(
                f"Cannot use a {type(source).__name__} as a run input.",
                hint="Pass a training set (ws.features.historical(...)), 'training_set:<id>' "
                "or 'table@version'.",
            )
        answer = self.client._post(f"/runs/{self.id}/inputs", {"inputs": [reference]})
        return str(answer["inputs"][0])

    def log_model(self, model: Any, name: str, **options: Any) -> ModelVersionInfo | None:
        """Register ``model`` on the server as the next version of ``name``, produced by
        this run: packaged here as the local registry packages it (flavor files, signature,
        input example), its files uploaded, the version linked to the run, its metrics
        (buffered points are sent first) and its training set. The options are those of
        :func:`plinth.registry.log_model`; other ranks than 0 get ``None``.

        Example:
            >>> # version = run.log_model(model, "delay", example=frame[:5])
        """
        if not self.logs:
            return None
        return self.client.register_model(model, name, run=self, **options)

    def _check_open(self) -> None:
        if self._status != "running":
            raise ConfigError(
                f"Run {self.id} has ended ({self._status}); nothing more can be logged to it.",
                hint="Start a new run with client.start_run(...).",
            )

    # -- sending ---------------------------------------------------------------------------

    def _flush_some(self, *, raise_errors: bool) -> None:
        """Send the buffer, a batch at a time; a batch that fails goes back to the front."""
        with self._send_lock:
            while True:
                with self._lock:
                    batch = self._buffer[: self.batch_size]
                    del self._buffer[: len(batch)]
                if not batch:
                    return
                try:
                    self.client._post(f"/runs/{self.id}/metrics", {"points": batch})
                except Exception as exc:
                    with self._lock:
                        self._buffer[:0] = batch
                    if raise_errors:
                        raise
                    logger.warning(
                        "Could not send %d metric points of run %s (%s); they stay buffered "
                        "and go with the next batch.",
                        len(batch),
                        self.id,
                        exc,
                    )
                    return

    def flush(self) -> None:
        """Send every buffered point now; raise if the server cannot take them.

        Example:
            >>> # run.flush()
        """
        self._flush_some(raise_errors=True)

    def _flush_loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stopped:
                return
            try:
                self._flush_some(raise_errors=False)
            except Exception:  # never let the background thread die on a surprise
                logger.exception("Flushing the metrics of run %s failed.", self.id)

    def end(
        self,
        status: str = "finished",
        error: str | None = None,
        *,
        usage: Usage | None = None,
        record_usage: bool = True,
    ) -> None:
        """Send the buffered points, then record the final status and this process's
        resource use; ending twice is a no-op.

        ``usage`` replaces the measured use (a launcher passes its child's);
        ``record_usage=False`` sends none. An attached script (``plinth train``) records its
        use and, when it failed or was killed, its status; the launcher ends the run.

        Example:
            >>> # run.end("failed", error="diverged")
        """
        if self._status != "running":
            return
        if status not in STATUSES:
            raise ConfigError(
                f"'{status}' is not a run status.", hint=f"Use one of: {', '.join(STATUSES)}."
            )
        self._stopped = True
        self._wake.set()
        try:
            self.flush()
        finally:
            body: dict[str, Any] = {"status": status}
            if error:
                body["error"] = error
            if usage is None and record_usage:
                usage = self._meter.usage()
            if usage is not None:
                body["usage"] = usage.as_dict()
            if self.attached:
                body["attached"] = True
            if self.rank:
                body["rank"] = self.rank
            try:
                self.client._post(f"/runs/{self.id}/end", body)
            finally:
                self._status = status
                _open.discard(self)
                if self._own_client:
                    self.client.close()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """End the run; a raising block fails it and uploads ``traceback.txt``, as locally."""
        from plinth.tracking.run import exit_outcome, traceback_text

        status, summary = exit_outcome(kind, exc)
        if summary is not None and self._status == "running" and self.logs:
            try:
                self.log_artifact(traceback_text(kind, exc, tb), "traceback.txt")
            except Exception as problem:  # the run's own error matters more
                logger.warning("Could not upload the traceback of run %s: %s", self.id, problem)
        self.end(status, error=summary)


def open_run(
    settings: Settings,
    experiment: str,
    params: Mapping[str, Any] | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    parent: str | None = None,
    capture: bool = True,
) -> RemoteRun:
    """The run ``ws.run(...)`` returns in remote mode: started on the server ``settings.url``
    names, or, under ``plinth train`` (``PLINTH_RUN_ID``), attached to the launcher's run as
    the process's rank (``RANK``, set by torchrun; 0 otherwise).

    Example:
        >>> # with open_run(settings, "delay", {"lr": 0.1}) as run: run.log_metric("loss", 0.3)
    """
    from plinth.client.remote import RemoteClient
    from plinth.tracking.run import NAMED_BY_SCRIPT_ENV, RANK_ENV, RUN_ID_ENV

    client = RemoteClient(settings.url, settings.token or None)
    try:
        launched = os.environ.get(RUN_ID_ENV)
        if launched:
            detail = client.run(launched)
            rank = int(os.environ.get(RANK_ENV, "0") or 0)  # set by torchrun for each rank
            run = RemoteRun(
                client, launched, detail.experiment, attached=True, rank=rank, own_client=True,
                end_at_exit=True,
            )  # fmt: skip
            _install_sigterm()
            named_here = experiment and len(experiment) <= 128
            if os.environ.get(NAMED_BY_SCRIPT_ENV) == "1" and run.logs and named_here:
                # The launcher was given no experiment: the script's name for it wins.
                named = client._post(f"/runs/{launched}/experiment", {"experiment": experiment})
                run.experiment = named["experiment"]
            run.log_params(params or {})
            run.set_tags(tags or {})
            return run
        started = client.start_run(
            experiment, params=params, tags=tags, parent=parent, capture=capture
        )
    except BaseException:
        client.close()
        raise
    started._own_client = started._end_at_exit = True
    _install_sigterm()
    return started


def _install_sigterm() -> None:
    from plinth.tracking.run import _install_sigterm as install

    install()  # SIGTERM unwinds the main thread, so a ``with`` block ends the run killed


@atexit.register
def _flush_open_runs() -> None:
    """At interpreter exit, send what open runs still buffer (their status stays running),
    and end the runs ``ws.run`` opened (as local runs are ended)."""
    for run in list(_open):
        try:
            if run._end_at_exit:
                from plinth.tracking.run import _terminated

                run.end("killed" if _terminated.is_set() else "finished")
                continue
            run._stopped = True
            run.flush()
        except Exception as exc:  # the process is ending: report, do not raise
            logger.warning("Could not send the last metric points of run %s: %s", run.id, exc)
