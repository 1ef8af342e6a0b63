"""Running one step attempt, wherever it runs: a local child process or a Ray worker.

:func:`execute` loads the step's input artifacts (verified by hash), calls the function with
its workspace and table inputs filled in, and stores each output as an artifact. It never
raises for the step's own failures: the :class:`Outcome` carries the traceback, which is also
written to stderr and so lands in the step's log.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.errors import PipelineError
from plinth.pipelines.dag import Ref, map_structure
from plinth.pipelines.serialize import dump_value, load_value
from plinth.pipelines.step_context import StepContext, TableInput, activate, deactivate
from plinth.pipelines.steps import Step, Table

if TYPE_CHECKING:
    from plinth.storage import ArtifactStore

__all__ = ["LOG_LIMIT", "Outcome", "StepCall", "capture_output", "execute", "read_log"]

#: Most bytes of one attempt's log kept (the start and the end; the middle is cut).
LOG_LIMIT = 8 * 1024 * 1024
_LOG_HEAD = 1024 * 1024


@dataclass
class StepCall:
    """Everything one attempt of a step needs, small enough to send to another process."""

    run_id: str
    node: str
    step: Step
    args: dict[str, Any]
    inputs: dict[str, str]
    tables: dict[str, int]
    attempt: int
    settings: dict[str, Any]
    storage: str


@dataclass
class Outcome:
    """How one attempt ended: output digests, or the error (``permanent``: do not retry)."""

    node: str
    attempt: int
    ok: bool
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    permanent: bool = False
    log: bytes = b""
    seconds: float = 0.0


def open_store(storage: str, settings: dict[str, Any] | None = None) -> ArtifactStore:
    """The artifact store under a storage root (a folder or an ``s3://`` URL), encrypting with
    the key the workspace ``settings`` name, if any.

    Example:
        >>> import tempfile
        >>> open_store(tempfile.mkdtemp()).put_bytes(b"x").size
        1
    """
    from plinth._core.settings import Settings
    from plinth.governance.crypto import load_cipher
    from plinth.storage import ArtifactStore, open_storage

    cipher = load_cipher(Settings(**settings)) if settings else None
    return ArtifactStore(open_storage(storage), cipher=cipher)


def _split_outputs(call: StepCall, result: Any) -> dict[str, Any]:
    names = call.step.outputs
    if not call.step.multiple:
        return {names[0]: result}
    if isinstance(result, dict) and set(result) == set(names):
        return {name: result[name] for name in names}
    if isinstance(result, tuple | list) and len(result) == len(names):
        return dict(zip(names, result, strict=True))
    raise PipelineError(
        f"Step '{call.node}' declares outputs {list(names)} but returned a "
        f"{type(result).__name__} that does not hold exactly those.",
        hint=f"Return a tuple of {len(names)} values or a dict with those keys.",
    )


def _call_arguments(call: StepCall, values: dict[str, Any], ctx: StepContext) -> Any:
    def leaf(value: Any) -> Any:
        if isinstance(value, Ref):
            return values[str(value)]
        if isinstance(value, Table):
            return TableInput(value.name, call.tables[value.name])
        return value

    resolved = {key: map_structure(value, leaf) for key, value in call.args.items()}
    signature = call.step.signature
    if "ws" in signature.parameters:
        resolved["ws"] = ctx.ws
    ordered = {name: resolved[name] for name in signature.parameters if name in resolved}
    return inspect.BoundArguments(signature, ordered)  # type: ignore[arg-type]


def execute(call: StepCall, store: ArtifactStore | None = None) -> Outcome:
    """Run one attempt of a step and store its outputs; failures become the outcome's error.

    Example:
        >>> # outcome = execute(call)  # in the process that runs the step
    """
    started = time.perf_counter()
    ctx = StepContext(call.run_id, call.node, call.attempt, dict(call.tables), call.settings)
    token = activate(ctx)
    try:
        store = store or open_store(call.storage, call.settings)
        stage = "loading its inputs"
        values = {
            ref: load_value(store.get_bytes(digest), trusted=True)
            for ref, digest in call.inputs.items()
        }
        bound = _call_arguments(call, values, ctx)
        stage = "running"
        result = call.step.fn(*bound.args, **bound.kwargs)
        stage = "storing its outputs"
        outputs = {}
        for name, value in _split_outputs(call, result).items():
            outputs[name] = store.put_bytes(dump_value(value, call.node, name)).digest
        return Outcome(call.node, call.attempt, True, outputs, seconds=_since(started))
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = traceback.format_exc()
        with contextlib.suppress(Exception):
            sys.stderr.write(text)
            sys.stderr.flush()
        permanent = stage == "storing its outputs" and isinstance(exc, PipelineError)
        if permanent:
            text = f"{exc}\n"
        elif stage != "running":
            text = f"Step '{call.node}' failed while {stage}:\n{text}"
        return Outcome(
            call.node, call.attempt, False, error=text, permanent=permanent, seconds=_since(started)
        )
    finally:
        ctx.close()
        deactivate(token)


def _since(started: float) -> float:
    return time.perf_counter() - started


@contextlib.contextmanager
def capture_output(path: str | os.PathLike[str]) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so C libraries and
    subprocesses too) to the file at ``path`` while the block runs.

    Example:
        >>> # with capture_output("/tmp/step.log"): print("into the log")
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    saved = (os.dup(1), os.dup(2))
    streams = (sys.stdout, sys.stderr)
    os.dup2(target, 1)
    os.dup2(target, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


def read_log(path: str | os.PathLike[str]) -> bytes:
    """Read a captured log, keeping its start and end when it is longer than ``LOG_LIMIT``.

    Example:
        >>> read_log("/nonexistent/step.log")
        b''
    """
    file = Path(path)
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        return b""
    with file.open("rb") as handle:
        if size <= LOG_LIMIT:
            return handle.read()
        head = handle.read(_LOG_HEAD)
        handle.seek(size - (LOG_LIMIT - _LOG_HEAD))
        tail = handle.read()
    cut = size - len(head) - len(tail)
    return head + f"\n[... {cut} bytes of log cut ...]\n".encode() + tail


def execute_captured(call: StepCall) -> Outcome:
    """:func:`execute` with the attempt's output captured into ``Outcome.log`` (for Ray).

    Example:
        >>> # outcome = execute_captured(call); outcome.log
    """
    fd, path = tempfile.mkstemp(prefix="plinth-step-", suffix=".log")
    os.close(fd)
    try:
        with capture_output(path):
            outcome = execute(call)
        outcome.log = read_log(path)
        return outcome
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
