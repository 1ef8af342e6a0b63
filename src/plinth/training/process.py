"""Run a training process: stream its output, keep its last lines, forward stop signals.

The child starts in a process group of its own, so a Ctrl-C in the terminal reaches only the
launcher, which forwards it exactly once (a second signal kills the child's group). The
child's resource use is read with ``wait4``: exactly that process and the processes it
waited for (torchrun's workers), even when several trials run side by side.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from plinth.tracking.resources import Usage

#: Lines of output kept for the ``output.log`` artifact of a run that did not finish.
TAIL_LINES = 200
#: Bytes of output kept at most (a single huge line must not fill memory).
TAIL_BYTES = 256 * 1024
#: Seconds a stopped child gets to end its run before it is killed.
STOP_GRACE_S = 30.0
_READ_SIZE = 65536


class OutputTail:
    """The last lines a process wrote (both streams, in arrival order), bounded in size.

    Example:
        >>> tail = OutputTail(max_lines=2)
        >>> tail.feed(b"a\\nb\\nc\\n")
        >>> tail.text()
        'b\\nc\\n'
    """

    def __init__(self, max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> None:
        self._lines: deque[bytes] = deque()
        self._partial = b""
        self._size = 0
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        """Add a chunk of output (any split: lines are reassembled)."""
        with self._lock:
            data = self._partial + data
            *complete, self._partial = data.split(b"\n")
            for line in complete:
                self._lines.append(line + b"\n")
                self._size += len(line) + 1
            if len(self._partial) > self._max_bytes:
                self._partial = self._partial[-self._max_bytes :]
            while self._lines and (
                len(self._lines) > self._max_lines or self._size > self._max_bytes
            ):
                self._size -= len(self._lines.popleft())

    def text(self) -> str:
        """The kept output as text (undecodable bytes replaced)."""
        with self._lock:
            data = b"".join(self._lines) + self._partial
        return data.decode("utf-8", errors="replace")

    def last_line(self) -> str:
        """The last non-empty line kept, or ``""``."""
        for line in reversed(self.text().splitlines()):
            if line.strip():
                return line.strip()
        return ""


class Stopper:
    """Turns SIGTERM and SIGINT into a stop of the training processes it watches.

    The first signal is forwarded to each child (which ends its run as ``killed``); a second
    one kills their process groups. ``on_stop`` callbacks run on the first signal (the Ray
    launcher uses one to interrupt the driver).

    Example:
        >>> stopper = Stopper()
        >>> stopper.requested is None
        True
    """

    def __init__(self) -> None:
        self.requested: int | None = None
        self._children: set[subprocess.Popen[bytes]] = set()
        self._callbacks: list[Callable[[int], None]] = []
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stopper]:
        """Handle SIGTERM and SIGINT while the block runs (main thread only; else a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.stop(signum)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask every watched process to stop (a second call kills them)."""
        with self._lock:
            first = self.requested is None
            if first:
                self.requested = signum
            children = list(self._children)
            callbacks = list(self._callbacks) if first else []
        for child in children:
            if first:
                _send(child, signum)
            else:
                _kill_group(child)
        for callback in callbacks:
            callback(signum)

    def on_stop(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(signum)`` on the first stop; returns a function that removes it."""
        with self._lock:
            self._callbacks.append(callback)
        return lambda: self._discard_callback(callback)

    def _discard_callback(self, callback: Callable[[int], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def watch(self, child: subprocess.Popen[bytes]) -> None:
        """Forward stops to ``child`` (at once, if a stop already came)."""
        with self._lock:
            self._children.add(child)
            pending = self.requested
        if pending is not None:
            _send(child, pending)

    def forget(self, child: subprocess.Popen[bytes]) -> None:
        """Stop forwarding to ``child``."""
        with self._lock:
            self._children.discard(child)


def _send(child: subprocess.Popen[bytes], signum: int) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child.pid, signum)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Outcome:
    """How a training process ended.

    ``exit_code`` follows the shell's convention (128 + N for a process killed by signal N);
    ``stopped`` is the signal the launcher forwarded, if a stop was requested.
    """

    exit_code: int
    stopped: int | None
    tail: OutputTail
    usage: Usage | None = None
    error: str | None = None


def _pump(pipe: IO[bytes], sink: IO[Any] | None, tail: OutputTail) -> None:
    fd = pipe.fileno()
    binary = getattr(sink, "buffer", None) if sink is not None else None
    while True:
        try:
            chunk = os.read(fd, _READ_SIZE)
        except OSError:
            break
        if not chunk:
            break
        tail.feed(chunk)
        if sink is not None:
            with contextlib.suppress(Exception):  # a closed terminal must not stop the pump
                if binary is not None:
                    binary.write(chunk)
                    binary.flush()
                else:
                    sink.write(chunk.decode("utf-8", errors="replace"))
                    sink.flush()
    with contextlib.suppress(OSError):
        pipe.close()


def _usage(rusage: Any, wall: float) -> Usage:
    scale = 1 if sys.platform == "darwin" else 1024
    return Usage(
        host=socket.gethostname(),
        wall_seconds=wall,
        cpu_seconds=rusage.ru_utime + rusage.ru_stime,
        peak_rss_bytes=int(rusage.ru_maxrss) * scale,
        gpu_count=0,
        gpu_seconds=0.0,
        gpu_peak_bytes=0,
    )


def _wait(child: subprocess.Popen[bytes], *, timeout: float | None = None) -> tuple[int, Any]:
    """``wait4`` the child: its exit status and rusage (``timeout`` None waits for good)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        flags = 0 if deadline is None else os.WNOHANG
        pid, status, rusage = os.wait4(child.pid, flags)
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode, rusage
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(0.05)


def run_process(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    stopper: Stopper,
    echo: bool = True,
    cwd: str | None = None,
) -> Outcome:
    """Run ``command`` to its end: stream (or only keep) its output, forward stops.

    Example:
        >>> import sys
        >>> outcome = run_process([sys.executable, "-c", "print('hi')"], {}, stopper=Stopper(),
        ...                       echo=False)
        >>> outcome.exit_code, outcome.tail.text()
        (0, 'hi\\n')
    """
    tail = OutputTail()
    started = time.perf_counter()
    child = subprocess.Popen(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    pumps = [
        threading.Thread(
            target=_pump,
            args=(pipe, sink if echo else None, tail),
            name=f"plinth-output-{child.pid}",
            daemon=True,
        )
        for pipe, sink in ((child.stdout, sys.stdout), (child.stderr, sys.stderr))
    ]
    for pump in pumps:
        pump.start()
    stopper.watch(child)
    try:
        try:
            code, rusage = _wait(child)
            stopped = stopper.requested
        except BaseException:
            # Interrupted from outside (a cancelled Ray task): stop the child before leaving.
            _send(child, signal.SIGTERM)
            try:
                _wait(child, timeout=STOP_GRACE_S)
            except TimeoutError:
                _kill_group(child)
                _wait(child)
            raise
    finally:
        stopper.forget(child)
    for pump in pumps:
        pump.join(timeout=5)  # a grandchild that kept the pipe open must not hang us
    exit_code = 128 - code if code < 0 else code
    return Outcome(
        exit_code=exit_code,
        stopped=stopped,
        tail=tail,
        usage=_usage(rusage, time.perf_counter() - started),
    )
