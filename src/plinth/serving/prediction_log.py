"""Prediction logging: every answered row appended to the lake table ``predictions__<model>``.

The request path only appends to an in-memory queue (microseconds, never blocking); a writer
process receives what queued several times a second, turns it into one Arrow table per model
and appends it to the lake every ``log_flush_s`` seconds, and once more on shutdown. A full
queue does not stall responses: the request is answered, its rows are counted as dropped
(``plinth_prediction_log_rows_total{outcome="dropped"}``) and a warning is logged, so
backpressure is visible, never silent.

Each row holds the request id, its row number, the time it was answered, the event time the
request named (``as_of``, for replayed traffic; else the answer time), the model and version,
the route (``primary``, ``canary`` or ``shadow``), the request's latency, every model input
(fetched features included) and entity key as typed columns, and the prediction. Outcomes
can be joined later by request id, or by entity keys and event time.

Inputs and keys that a data contract marks as personal data (``pii: hash`` or ``pii: drop``,
traced to their tables by :mod:`plinth.governance.pii`) are hashed or left out by the writer
before anything is written; the policy of each model is looked up again every
:data:`PRIVACY_REFRESH_S` seconds, so a newly marked column is protected within a minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import struct
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from plinth.workspace import Workspace

log = logging.getLogger(__name__)
#: How long the writer keeps a model's personal-data policy before looking it up again.
PRIVACY_REFRESH_S = 60.0
_ARROW_TYPES = {
    "float": "float64",
    "integer": "int64",
    "boolean": "bool_",
}


def log_table(model: str) -> str:
    """The lake table a model's predictions are logged to.

    Example:
        >>> log_table("delay-model")
        'predictions__delay_model'
    """
    return "predictions__" + "".join(c if c.isalnum() or c == "_" else "_" for c in model)


@dataclass
class LogEntry:
    """One answered request, as queued for the log."""

    request_id: str
    model: str
    version: int
    route: str
    answered_at: datetime
    event_time: datetime | None
    latency_ms: float
    inputs: dict[str, list[Any]]
    kinds: dict[str, str]
    predictions: np.ndarray
    n: int


class PredictionLog:
    """A bounded queue of answered requests, drained to a writer process that appends them.

    The lake writes (Arrow conversion, Delta commit, catalog version, profile) run in a
    separate process, so they never hold the serving process's GIL: the request path
    appends to a list, and a sender thread hands what queued to the writer every
    ``send_s`` seconds as one pickled message. ``flush()`` waits until everything put so far
    is in the lake; ``close()`` does that and stops the writer.

    Example:
        >>> # plog = PredictionLog(ws); plog.start(); plog.put(entry); plog.close()
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        max_rows: int = 100_000,
        flush_s: float = 5.0,
        send_s: float = 0.05,
    ) -> None:
        self.ws = ws
        self.max_rows = max_rows
        self.flush_s = flush_s
        self.send_s = send_s
        self._pending: list[LogEntry] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: Any = None
        self._conn: Any = None
        self.written = 0
        self.dropped = 0

    @property
    def queued_rows(self) -> int:
        """Rows put but not yet handed to the writer."""
        return self._rows

    def start(self) -> None:
        """Start the writer process and the sender thread."""
        import subprocess
        import sys

        settings = getattr(self.ws.settings, "settings", self.ws.settings)
        # A fresh interpreter (not fork: the server has threads and an event loop; not
        # multiprocessing's spawn: it would re-import the server's main module).
        self._process = subprocess.Popen(
            [sys.executable, "-m", "plinth.serving.prediction_log"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # Ctrl-C reaches the server, which then closes the writer
        )
        self._conn = _Pipe(self._process.stdout.fileno(), self._process.stdin.fileno())
        self._conn.send(("open", (settings.model_dump(mode="json"), self.flush_s)))
        self._thread = threading.Thread(target=self._loop, name="plinth-log-sender", daemon=True)
        self._thread.start()

    def put(self, entry: LogEntry) -> bool:
        """Queue an answered request; ``False`` (and counted as dropped) when the queue is full."""
        with self._lock:
            if self._rows + entry.n > self.max_rows:
                self.dropped += entry.n
                full = True
            else:
                self._pending.append(entry)
                self._rows += entry.n
                full = False
        if full:
            log.warning("prediction log queue full: %d rows dropped so far", self.dropped)
        return not full

    def _loop(self) -> None:
        while not self._stop.wait(self.send_s):
            try:
                self._send()
            except (OSError, EOFError, BrokenPipeError):
                log.exception("prediction log writer is gone; rows stay queued")

    def _send(self) -> None:
        with self._send_lock:
            with self._lock:
                entries, self._pending = self._pending, []
                self._rows = 0
            if entries:
                self._conn.send(("rows", [_pack(e) for e in entries]))

    def flush(self, timeout_s: float = 60.0) -> int:
        """Hand over everything queued and wait until the writer has it in the lake; return
        the rows written so far.

        Example:
            >>> # plog.flush()
        """
        if self._conn is None:
            return self.written
        self._send()
        with self._send_lock:
            self._conn.send(("flush", None))
            if not self._conn.poll(timeout_s):
                raise TimeoutError("the prediction log writer did not answer")
            self.written = int(self._conn.recv())
        return self.written

    def close(self) -> None:
        """Write everything queued, then stop the writer.

        Example:
            >>> # plog.close()
        """
        if self._conn is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.flush()
            with self._send_lock:
                self._conn.send(("close", None))
        finally:
            try:
                self._process.wait(30)
            finally:
                self._conn.close()
                self._conn = None


def _pack(entry: LogEntry) -> tuple[Any, ...]:
    return (
        entry.request_id,
        entry.model,
        entry.version,
        entry.route,
        entry.answered_at,
        entry.event_time,
        entry.latency_ms,
        entry.inputs,
        entry.kinds,
        entry.predictions,
        entry.n,
    )


class _Pipe:
    """Length-prefixed pickled messages over a pair of file descriptors (unbuffered, so
    ``poll`` sees exactly what has not been read)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(struct.pack("<Q", len(data)) + data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def _read(self, size: int) -> bytes:
        chunks = []
        while size:
            chunk = os.read(self.read_fd, min(size, 1 << 20))
            if not chunk:
                raise EOFError("the other side closed the pipe")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> Any:
        (size,) = struct.unpack("<Q", self._read(8))
        return pickle.loads(self._read(size))

    def poll(self, timeout: float) -> bool:
        import select

        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        return bool(ready)

    def close(self) -> None:
        for fd in (self.write_fd, self.read_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _writer_main(conn: _Pipe) -> None:
    """The writer process: receive answered requests, append them to the lake in batches."""
    from plinth._core.settings import Settings
    from plinth.workspace import Workspace

    kind, (settings, flush_s) = conn.recv()
    # Background work: requests come first. The log's rows are profiled by monitoring, not
    # on every append (a profile per flush would cost more than the write).
    os.nice(19)
    # Given values beat the server's environment, which may say PLINTH_PROFILE_ON_INGEST=true.
    ws = Workspace(settings=Settings(**{**settings, "profile_on_ingest": False}))
    _warm_up(ws)
    privacy = LogPrivacy(ws)
    # Per model: the entries received, and their rows already in Arrow. Each message is
    # converted as it arrives, so a flush is one concatenation and one commit instead of a
    # burst of conversion work while the server answers requests.
    pending: dict[str, tuple[list[LogEntry], list[pa.Table]]] = {}
    written = 0

    def receive(payload: list[tuple[Any, ...]]) -> None:
        by_model: dict[str, list[LogEntry]] = {}
        for item in payload:
            entry = LogEntry(*item)
            by_model.setdefault(entry.model, []).append(entry)
        for model, group in by_model.items():
            entries, tables = pending.setdefault(model, ([], []))
            entries.extend(group)
            try:
                tables.append(to_arrow(group))
            except Exception:  # converted again, all together, at the flush
                log.exception("prediction log rows for %s could not be converted", model)

    def write() -> None:
        nonlocal written
        for model, (entries, tables) in pending.items():
            for attempt in range(5):
                try:
                    table = privacy.apply(model, entries, _joined(entries, tables))
                    ws.lake.ingest(
                        table,
                        table=log_table(model),
                        mode="append",
                        evolve=True,
                        checks=False,
                        encrypt=True,  # when the workspace has a key
                    )
                    written += table.num_rows
                    break
                except Exception:
                    log.exception("prediction log write for %s failed (try %d)", model, attempt)
                    time.sleep(0.5 * (attempt + 1))
        pending.clear()

    last = time.monotonic()
    try:
        while True:
            wait = max(0.0, flush_s - (time.monotonic() - last))
            if conn.poll(wait):
                kind, payload = conn.recv()
                if kind == "rows":
                    receive(payload)
                    continue
                write()
                last = time.monotonic()
                if kind == "flush":
                    conn.send(written)
                elif kind == "close":
                    return
            else:
                write()
                last = time.monotonic()
    except EOFError:
        write()  # the server went away without a close: keep what it sent
    finally:
        ws.close()


def _joined(entries: list[LogEntry], tables: list[pa.Table]) -> pa.Table:
    """One table of the rows of ``entries``, from the parts converted as they arrived.

    Parts whose columns disagree (an input sent as a number, later as text) are converted
    again together, which settles each column's type over all of them.

    Example:
        >>> # _joined(entries, [to_arrow(entries[:10]), to_arrow(entries[10:])]).num_rows
    """
    import pyarrow as pa

    if sum(t.num_rows for t in tables) == sum(e.n for e in entries):
        try:
            # One chunk per column: Delta's Parquet writer is a third faster on it.
            return pa.concat_tables(tables, promote_options="default").combine_chunks()
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return to_arrow(entries)


def _warm_up(ws: Workspace) -> None:
    """Pay the writer's one-time costs at its start, while the server loads its models.

    Imports and opening the catalog cost about a second of CPU; paid in the first flush, they
    would take a core from the server while it answers requests.
    """
    import deltalake  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401

    from plinth.governance import pii  # noqa: F401
    from plinth.registry import service  # noqa: F401

    ws.models  # noqa: B018 - opens (and migrates) the catalog
    ws.quality  # noqa: B018 - attaches the lake's ingest hooks


class LogPrivacy:
    """Hashes or drops the personal-data columns of a model's log rows before they are written.

    Which columns, and how, comes from the data contracts (see :mod:`plinth.governance.pii`);
    it is looked up once per model and versions, and again after :data:`PRIVACY_REFRESH_S`
    seconds. A failed lookup raises, so rows are never written unprotected.

    Example:
        >>> # LogPrivacy(ws).apply("delay", entries, to_arrow(entries))
    """

    def __init__(self, ws: Workspace, refresh_s: float = PRIVACY_REFRESH_S) -> None:
        self.ws = ws
        self.refresh_s = refresh_s
        self._secret: bytes | None = None
        self._policies: dict[tuple[str, frozenset[int]], tuple[float, dict[str, str]]] = {}

    def actions(self, model: str, entries: list[LogEntry]) -> dict[str, str]:
        """What to do with each personal-data column among these entries' inputs and keys.

        Example:
            >>> # LogPrivacy(ws).actions("delay", entries)  -> {'passengers__email': 'hash'}
        """
        from plinth.governance.pii import model_pii

        versions = frozenset(e.version for e in entries)
        key = (model, versions)
        now = time.monotonic()
        cached = self._policies.get(key)
        if cached is None or now - cached[0] > self.refresh_s:
            columns = list(dict.fromkeys(n for e in entries for n in e.inputs))
            cached = (now, dict(model_pii(self.ws, model, sorted(versions), columns)))
            self._policies[key] = cached
        columns = {n for e in entries for n in e.inputs}
        return {n: a for n, a in cached[1].items() if n in columns}

    def apply(self, model: str, entries: list[LogEntry], table: pa.Table) -> pa.Table:
        """``table`` (built from ``entries``) with its personal-data columns protected.

        Example:
            >>> # LogPrivacy(ws).apply("delay", entries, to_arrow(entries)).column_names
        """
        from plinth.governance.pii import hashing_secret, protect

        actions = self.actions(model, entries)
        if not actions:
            return table
        if self._secret is None and "hash" in actions.values():
            self._secret = hashing_secret(self.ws)
        return protect(
            table, actions, secret=self._secret or b"", existing=self._stored_schema(model)
        )

    def _stored_schema(self, model: str) -> pa.Schema | None:
        import pyarrow as pa

        from plinth.errors import NotFoundError

        try:
            stored = self.ws.lake.delta_table(log_table(model))
        except NotFoundError:
            return None
        return pa.schema(stored.schema().to_arrow())


def to_arrow(entries: list[LogEntry]) -> pa.Table:
    """The log rows of some answered requests of one model, as an Arrow table.

    Example:
        >>> # to_arrow([entry]).column_names[:3]
        >>> # ['request_id', 'row', 'answered_at']
    """
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    ids: list[str] = []
    rows: list[int] = []
    answered: list[datetime] = []
    event: list[datetime] = []
    versions: list[int] = []
    routes: list[str] = []
    latency: list[float] = []
    names = list(dict.fromkeys(name for e in entries for name in e.inputs))
    inputs: dict[str, list[Any]] = {name: [] for name in names}
    kinds: dict[str, str] = {}
    predictions: list[Any] = []
    scalar = all(e.predictions.ndim == 1 for e in entries)
    for e in entries:
        ids.extend([e.request_id] * e.n)
        rows.extend(range(e.n))
        answered.extend([e.answered_at] * e.n)
        event.extend([e.event_time or e.answered_at] * e.n)
        versions.extend([e.version] * e.n)
        routes.extend([e.route] * e.n)
        latency.extend([e.latency_ms] * e.n)
        kinds.update(e.kinds)
        for name in names:
            values = e.inputs.get(name)
            inputs[name].extend(values if values is not None else [None] * e.n)
        if scalar:
            predictions.extend(e.predictions.tolist())
        else:
            predictions.extend(json.dumps(np.asarray(p).tolist()) for p in e.predictions)
    columns: dict[str, Any] = {
        "request_id": pa.array(ids, pa.string()),
        "row": pa.array(rows, pa.int32()),
        "answered_at": pa.array(answered, ts),
        "event_time": pa.array(event, ts),
        "model_version": pa.array(versions, pa.int32()),
        "route": pa.array(routes, pa.string()),
        "latency_ms": pa.array(latency, pa.float64()),
    }
    for name in names:
        columns[name] = _column(inputs[name], kinds.get(name))
    columns["prediction"] = pa.array(predictions, pa.float64() if scalar else pa.string())
    return pa.table(columns)


def _column(values: list[Any], kind: str | None) -> pa.Array:
    import pyarrow as pa

    arrow = _ARROW_TYPES.get(kind or "")
    if arrow is not None:
        try:
            return pa.array(values, getattr(pa, arrow)())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    return pa.array([None if v is None else str(v) for v in values], pa.string())


if __name__ == "__main__":
    import sys

    # Messages use the real stdin/stdout descriptors; print() goes to stderr.
    read_fd, write_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _writer_main(_Pipe(read_fd, write_fd))
