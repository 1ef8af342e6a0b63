"""The local executor: each step attempt in a process of its own, independent steps at once.

Step processes come from a fork server (:mod:`~plinth.pipelines.executors.zygote`): a
small single-threaded process started for the run that has imported Plinth's worker code and
the third-party packages the steps use, and forks a child per attempt in a few milliseconds.
The runner's own process (with its threads, catalog connections and runtimes such as
deltalake's) is never forked. A child takes the runner's ``sys.path``, working directory and
environment, imports the step's module fresh (so it runs the code that was hashed), sends its
stdout and stderr (file descriptors 1 and 2) to a log file, runs the step and writes its
outcome to a file the runner reads.

Steps that cannot be imported by module and name (defined inside a function or in a
notebook) run in direct forks of the runner's process instead, whose children forget the
runner's catalog connections without closing them. Such a child inherits everything else
too: define steps in a module when they use libraries with background runtimes.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError, PipelineError
from plinth.pipelines.executors import Executor
from plinth.pipelines.worker import Outcome, StepCall, capture_output, execute, read_log

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from plinth.pipelines.dag import Dag
    from plinth.workspace import Workspace

__all__ = ["START_METHODS", "LocalExecutor", "available_cpus", "child_main"]

#: ``forkserver``: children of a clean fork server; ``fork``: forks of the runner itself.
START_METHODS = ("forkserver", "fork")
#: Seconds a cancelled child gets to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 5.0

# The workspace whose catalog a direct fork must leave alone (set before forking).
_PARENT_WS: Any = None


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask where the OS has one).

    Example:
        >>> available_cpus() >= 1
        True
    """
    with contextlib.suppress(AttributeError, OSError):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def child_main(job: dict[str, Any]) -> None:
    """Run one attempt in this (freshly forked) process and write its outcome file.

    ``job`` holds the call (pickled when it comes through the fork server, with the
    runner's ``sys_path``, ``cwd`` and ``env``), the ``log`` and ``result`` paths, ``node``
    and ``attempt``.

    Example:
        >>> # child_main({"call": call, "log": "1.log", "result": "1.outcome", ...})
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if "env" in job:
        sys.path[:] = job["sys_path"]
        with contextlib.suppress(OSError):
            os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
    elif _PARENT_WS is not None and "catalog" in _PARENT_WS.__dict__:
        # A direct fork: forget the runner's pooled connections without closing them.
        with contextlib.suppress(Exception):
            _PARENT_WS.catalog.engine.dispose(close=False)
    with capture_output(job["log"]):
        call = job["call"]
        if isinstance(call, bytes):
            try:
                call = pickle.loads(call)
            except Exception:
                text = traceback.format_exc()
                sys.stderr.write(text)
                call = None
                outcome = Outcome(
                    job["node"],
                    job["attempt"],
                    False,
                    error=f"Step '{job['node']}' could not be imported in its process:\n{text}",
                    permanent=True,
                )
        if call is not None:
            outcome = execute(call)
    temporary = job["result"] + ".tmp"
    with open(temporary, "wb") as handle:
        pickle.dump(outcome, handle)
    os.replace(temporary, job["result"])


def _direct_child(job: dict[str, Any]) -> None:
    child_main(job)


def third_party_packages(modules: set[str]) -> list[str]:
    """Top-level packages (not the standard library, not user code) used by ``modules``.

    Example:
        >>> third_party_packages({"json"})
        []
    """
    from plinth.pipelines.hashing import is_user_module

    found: set[str] = set()
    for name in modules:
        module = sys.modules.get(name)
        if module is None:
            continue
        for value in list(vars(module).values()):
            owner = value.__name__ if isinstance(value, type(sys)) else None
            owner = owner or getattr(value, "__module__", None)
            if not isinstance(owner, str) or not owner:
                continue
            top = owner.split(".")[0]
            if (
                top in sys.stdlib_module_names
                or top in ("plinth", "builtins", "__main__")
                or top.startswith("_")
                or top not in sys.modules
                or is_user_module(top)
            ):
                continue
            found.add(top)
    return sorted(found)


class _ForkServer:
    """The runner's handle on a fork server process."""

    def __init__(self) -> None:
        parent, child = multiprocessing.Pipe(duplex=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "plinth.pipelines.executors.zygote", str(child.fileno())],
            pass_fds=[child.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.conn: Connection = parent
        self.owner = os.getpid()
        self.preloaded: set[str] = set()

    def preload(self, modules: list[str]) -> None:
        new = [m for m in modules if m not in self.preloaded]
        if new:
            self.conn.send(("preload", new))
            self.preloaded.update(new)

    def run(self, job_id: str, job: dict[str, Any]) -> None:
        self.conn.send(("run", job_id, job))

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def cancel(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.conn.send(("cancel",))
            deadline = time.monotonic() + STOP_TIMEOUT + 5
            while self.conn.poll(max(deadline - time.monotonic(), 0)):
                if self.conn.recv()[0] == "cancelled":
                    break

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        try:
            self.process.wait(STOP_TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


#: Idle fork servers of this process, kept warm (with their imports) for the next run.
_IDLE: list[_ForkServer] = []
#: Most idle fork servers kept.
MAX_IDLE = 2


def _take_server() -> _ForkServer:
    while _IDLE:
        server = _IDLE.pop()
        if server.alive():
            return server
        server.close()
    return _ForkServer()


def _give_back(server: _ForkServer) -> None:
    if server.alive() and len(_IDLE) < MAX_IDLE:
        _IDLE.append(server)
    else:
        server.close()


@atexit.register
def _close_idle() -> None:
    while _IDLE:
        with contextlib.suppress(Exception):
            _IDLE.pop().close()


@dataclass
class _Running:
    call: StepCall
    job_id: str
    log_path: str
    result_path: str
    cpus: float
    started: float
    process: BaseProcess | None = None


class LocalExecutor(Executor):
    """Run each step attempt in its own process on this machine.

    Steps start while the CPUs they ask for (``Resources.cpu``) fit in ``cpus`` (default:
    the CPUs this process may use); a step asking for more than that runs alone.
    ``start_method`` is ``forkserver`` (the default when every step is importable) or
    ``fork`` (the default otherwise).

    Example:
        >>> LocalExecutor(cpus=4).cpus
        4
    """

    name = "local"

    def __init__(self, *, cpus: float | None = None, start_method: str | None = None) -> None:
        self.cpus = cpus if cpus is not None else available_cpus()
        if self.cpus <= 0:
            raise ConfigError(f"cpus={cpus} must be positive.", hint="Leave it out for all.")
        if start_method is not None and start_method not in START_METHODS:
            raise ConfigError(
                f"Unknown start method '{start_method}'.",
                hint=f"Use one of: {', '.join(START_METHODS)}.",
            )
        self.requested = start_method
        self.start_method = start_method or "forkserver"
        self.preload: list[str] = []
        self.queue: deque[StepCall] = deque()
        self.running: dict[str, _Running] = {}
        self.used = 0.0
        self.folder: str | None = None
        self.server: _ForkServer | None = None
        self._jobs = 0

    def check(self, dag: Dag) -> None:
        """Choose the start method: ``forkserver`` needs every step importable by name."""
        stuck = []
        for node in dag.nodes.values():
            try:
                if pickle.loads(pickle.dumps(node.step)) is not node.step:
                    stuck.append((node.name, "its module holds another object by that name"))
            except Exception as exc:
                stuck.append((node.name, str(exc)))
        if stuck and self.requested == "forkserver":
            name, why = stuck[0]
            raise PipelineError(
                f"Step '{name}' cannot be imported by a step process: {why}.",
                hint="Define steps at the top level of an importable module, or use "
                "start_method='fork'.",
            )
        self.start_method = self.requested or ("fork" if stuck else "forkserver")
        modules = {node.step.fn.__module__ for node in dag.nodes.values()}
        wanted = set(third_party_packages(modules))
        if any("ws" in n.step.signature.parameters or n.tables for n in dag.nodes.values()):
            wanted |= {"plinth.workspace", "plinth.catalog"}
        if any(n.tables for n in dag.nodes.values()):
            wanted |= {"plinth.lake", "plinth.quality.service"}
        self.preload = sorted(wanted)

    def _preload_storage(self, storage: str) -> None:
        if storage.startswith("s3://") and "s3fs" not in self.preload:
            self.preload.append("s3fs")

    def open(self, ws: Workspace) -> None:
        """Make the run's folder for logs and outcomes."""
        global _PARENT_WS
        _PARENT_WS = ws
        self.folder = tempfile.mkdtemp(prefix="plinth-pipeline-")

    def _cost(self, call: StepCall) -> float:
        return min(float(call.step.resources.cpu), float(self.cpus))

    def submit(self, call: StepCall) -> None:
        """Queue an attempt; it starts as soon as its CPUs are free."""
        self.queue.append(call)
        self._start_queued()

    def _start_queued(self) -> None:
        while self.queue:
            cost = self._cost(self.queue[0])
            if self.running and self.used + cost > self.cpus + 1e-9:
                return
            self._start(self.queue.popleft(), cost)

    def _start(self, call: StepCall, cost: float) -> None:
        if self.folder is None:
            raise PipelineError("The local executor was not opened.", hint="Call open() first.")
        self._jobs += 1
        job_id = f"{self._jobs}-{call.node}"
        base = os.path.join(self.folder, f"{self._jobs}")
        job: dict[str, Any] = {
            "node": call.node,
            "attempt": call.attempt,
            "log": base + ".log",
            "result": base + ".outcome",
        }
        item = _Running(call, job_id, job["log"], job["result"], cost, time.perf_counter())
        if self.start_method == "forkserver":
            self._preload_storage(call.storage)
            if self.server is None:
                self.server = _take_server()
                self.server.preload(self.preload)
            job.update(
                call=pickle.dumps(call),
                sys_path=list(sys.path),
                cwd=os.getcwd(),
                env=dict(os.environ),
            )
            self.server.run(job_id, job)
        else:
            job["call"] = call
            for stream in (sys.stdout, sys.stderr):  # keep buffered text out of the child
                with contextlib.suppress(Exception):
                    stream.flush()
            process = multiprocessing.get_context("fork").Process(
                target=_direct_child, args=(job,), name=f"plinth-step-{call.node}"
            )
            process.start()
            item.process = process
        self.used += cost
        self.running[job_id] = item

    def wait(self, timeout: float | None) -> list[Outcome]:
        """Wait for attempts to end (up to ``timeout`` seconds) and return their outcomes."""
        self._start_queued()
        if not self.running:
            if timeout:
                time.sleep(timeout)
            return []
        handles: list[Any] = [i.process.sentinel for i in self.running.values() if i.process]
        if self.server is not None and any(i.process is None for i in self.running.values()):
            handles.append(self.server.conn)
        finished: list[Outcome] = []
        for handle in wait(handles, timeout):
            if self.server is not None and handle is self.server.conn:
                finished.extend(self._server_messages())
                continue
            for job_id, item in list(self.running.items()):
                if item.process is not None and item.process.sentinel == handle:
                    item.process.join()
                    finished.append(self._finish(job_id, item.process.exitcode))
        self._start_queued()
        return finished

    def _server_messages(self) -> list[Outcome]:
        assert self.server is not None
        finished = []
        try:
            while self.server.conn.poll():
                message = self.server.conn.recv()
                if message[0] == "exited" and message[1] in self.running:
                    finished.append(self._finish(message[1], message[2]))
        except (EOFError, OSError):
            # The fork server died: every attempt it held is lost.
            for job_id in [j for j, i in self.running.items() if i.process is None]:
                finished.append(self._finish(job_id, None))
            self.server = None
        return finished

    def _finish(self, job_id: str, exit_code: int | None) -> Outcome:
        item = self.running.pop(job_id)
        self.used = max(self.used - item.cpus, 0.0)
        outcome: Outcome | None = None
        with (
            contextlib.suppress(OSError, EOFError, pickle.UnpicklingError),
            open(item.result_path, "rb") as handle,
        ):
            outcome = pickle.load(handle)
        if outcome is None:
            outcome = Outcome(
                item.call.node,
                item.call.attempt,
                False,
                error=_exit_message(item.call.node, exit_code),
            )
        outcome.seconds = outcome.seconds or (time.perf_counter() - item.started)
        outcome.log = read_log(item.log_path)
        for path in (item.log_path, item.result_path):
            with contextlib.suppress(OSError):
                os.unlink(path)
        return outcome

    def cancel(self) -> None:
        """Terminate every running attempt and drop the queued ones."""
        self.queue.clear()
        if self.server is not None:
            self.server.cancel()
        deadline = time.monotonic() + STOP_TIMEOUT
        for item in self.running.values():
            if item.process is not None:
                with contextlib.suppress(Exception):
                    item.process.terminate()
        for item in self.running.values():
            if item.process is not None:
                item.process.join(max(deadline - time.monotonic(), 0))
                if item.process.is_alive():
                    item.process.kill()
                    item.process.join()
        self.running.clear()
        self.used = 0.0

    def close(self) -> None:
        """Stop what still runs, the fork server, and remove the run's folder."""
        global _PARENT_WS
        if self.running or self.queue:
            self.cancel()
        if self.server is not None:
            _give_back(self.server)
            self.server = None
        _PARENT_WS = None
        if self.folder:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _exit_message(node: str, code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return (
                f"The process of step '{node}' was killed by {signal.Signals(-code).name} "
                "before it finished (out of memory, or killed from outside?).\n"
            )
    if code is None:
        return f"The process of step '{node}' was lost (its fork server stopped).\n"
    return f"The process of step '{node}' exited with code {code} before it finished.\n"
