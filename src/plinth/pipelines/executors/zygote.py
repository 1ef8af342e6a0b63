"""The fork server of the local executor: a small, single-threaded process that forks steps.

The runner's own process may hold threads, database connections and runtimes that do not
survive ``fork`` (deltalake's tokio runtime panics in a forked child). This process holds
none of them: it imports Plinth's worker code and the third-party packages the steps use
(never the steps' own modules, which each child imports fresh, so edited code is never
stale), then forks one child per step attempt on request. Each child takes the parent's
current ``sys.path``, working directory and environment before it imports the step.

Protocol on the connection (pickled tuples): ``("preload", [module, ...])``,
``("run", job_id, job)`` and ``("cancel",)`` in; ``("exited", job_id, exit_code)`` and
``("cancelled",)`` out. End of input stops the server and its children.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import selectors
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["BASE_PRELOAD", "main"]

#: Modules every fork server imports before forking (the child side of the worker).
BASE_PRELOAD = ("plinth.pipelines.executors.local", "plinth.storage")
#: Seconds children get to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 5.0


def _preload(names: list[str] | tuple[str, ...]) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _reap(children: dict[int, str], conn: Connection | None) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        job_id = children.pop(pid, None)
        if job_id is not None and conn is not None:
            conn.send(("exited", job_id, os.waitstatus_to_exitcode(status)))


def _stop(children: dict[int, str], conn: Connection | None) -> None:
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while children and time.monotonic() < deadline:
        _reap(children, conn)
        time.sleep(0.02)
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        job_id = children.pop(pid)
        if conn is not None:
            conn.send(("exited", job_id, -signal.SIGKILL))


def _fork(job: dict[str, Any], conn: Connection, wake: tuple[int, int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for fd in wake:
            os.close(fd)
        conn.close()
        from plinth.pipelines.executors.local import child_main

        child_main(job)
        code = 0
    finally:
        os._exit(code)


def serve(conn: Connection) -> None:
    """Serve fork requests on ``conn`` until it closes.

    Example:
        >>> # serve(Connection(fd))  # in the fork server process
    """
    _preload(BASE_PRELOAD)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    children: dict[int, str] = {}
    selector = selectors.DefaultSelector()
    selector.register(conn.fileno(), selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                if key.fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 4096):
                            pass
                    continue
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    return
                if message[0] == "run":
                    _, job_id, job = message
                    children[_fork(job, conn, (wake_r, wake_w))] = job_id
                elif message[0] == "preload":
                    _preload(message[1])
                elif message[0] == "cancel":
                    _stop(children, conn)
                    conn.send(("cancelled",))
            _reap(children, conn)
    finally:
        _stop(children, None)


def main() -> None:
    """Entry point: ``python -m plinth.pipelines.executors.zygote FD``.

    Example:
        >>> # python -m plinth.pipelines.executors.zygote 5
    """
    conn = Connection(int(sys.argv[1]))
    serve(conn)


if __name__ == "__main__":
    main()
