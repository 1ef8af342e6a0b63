"""A run recorded through the control-plane server, with metric points sent in batches.

Points are buffered in the process and posted to ``POST /api/v1/runs/{id}/metrics`` when
``batch_size`` of them are waiting, every ``interval_s`` seconds (a background thread), when
:meth:`RemoteRun.flush` or :meth:`RemoteRun.end` is called, when the ``with`` block is left
(a raising block ends the run ``failed`` with the error), and at interpreter exit for runs
still open. A batch that cannot be sent stays in the buffer and goes with the next one; the
buffer is bounded: past ``max_buffered`` points, logging waits for a send to succeed (and
raises its error) rather than dropping points.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plinth.client.base import RunHandle
from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth.client.remote import RemoteClient

__all__ = ["BATCH_SIZE", "INTERVAL_S", "RemoteRun"]

logger = logging.getLogger(__name__)

#: Points sent per request at most, and the most seconds a point waits in the buffer.
BATCH_SIZE, INTERVAL_S = 500, 5.0
STATUSES = ("finished", "failed", "killed")

_open: weakref.WeakSet[RemoteRun] = weakref.WeakSet()


def _value(key: str, value: Any) -> float:
    from plinth.tracking.writer import check_value

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
        self._thread = threading.Thread(
            target=self._flush_loop, name=f"plinth-run-{run_id}", daemon=True
        )
        self._thread.start()
        _open.add(self)

    @property
    def status(self) -> str:
        """``running`` until :meth:`end`, then the status recorded."""
        return self._status

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
        value = _value(key, value)
        with self._lock:
            step = self._next_step((key,)) if step is None else int(step)
            self._steps[key] = step
        self._add([{"key": key, "value": value, "step": step, "timestamp": time.time()}])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Buffer several metric points at one step (one past their highest by default).

        Example:
            >>> # run.log_metrics({"loss": 0.25, "auc": 0.71}, step=10)
        """
        if not metrics:
            return
        values = {k: _value(k, v) for k, v in metrics.items()}
        now = time.time()
        with self._lock:
            step = self._next_step(tuple(values)) if step is None else int(step)
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
        if params:
            self.client._post(f"/runs/{self.id}/params", {"params": _plain(params)})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags now (one request).

        Example:
            >>> # run.set_tags({"team": "ops"})
        """
        self._check_open()
        if tags:
            self.client._post(f"/runs/{self.id}/tags", {"tags": _plain(tags)})

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

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Send the buffered points, then record the final status; ending twice is a no-op.

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
            self.client._post(f"/runs/{self.id}/end", body)
            self._status = status
            _open.discard(self)


@atexit.register
def _flush_open_runs() -> None:
    """At interpreter exit, send what open runs still buffer (their status stays running)."""
    for run in list(_open):
        try:
            run._stopped = True
            run.flush()
        except Exception as exc:  # the process is ending: report, do not raise
            logger.warning("Could not send the last metric points of run %s: %s", run.id, exc)
