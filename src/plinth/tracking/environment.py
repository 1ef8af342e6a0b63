"""What a run ran on: code version, entry point, Python and packages, OS and hardware.

Captured once when a run starts, stored with the run, so any result can be traced back to
the exact code and machine that produced it. Secrets in the command line (passwords in URLs,
tokens, the value after ``--password``) are masked before anything is stored.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plinth._core.urls import redact_arguments, redact_text

GIT_TIMEOUT_S = 10
#: A dirty working tree's diff is kept as an artifact up to this size; larger ones are cut.
DIFF_LIMIT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class GitState:
    """The git commit a run's code came from, whether the tree was dirty, and its diff."""

    commit: str | None
    branch: str | None
    dirty: bool
    root: str | None
    diff: bytes | None

    def as_dict(self) -> dict[str, Any]:
        """The state without the diff, for the run's environment record."""
        return {
            "commit": self.commit,
            "branch": self.branch,
            "dirty": self.dirty,
            "root": self.root,
        }


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace")


def git_state(path: str | Path | None = None) -> GitState:
    """Return the git state of the repository holding ``path`` (default: the working dir).

    Example:
        >>> import tempfile
        >>> git_state(tempfile.mkdtemp()).commit is None
        True
    """
    cwd = Path(path or os.getcwd())
    if not cwd.is_dir():
        cwd = cwd.parent
    if shutil.which("git") is None:
        return GitState(None, None, False, None, None)
    root = _git(["rev-parse", "--show-toplevel"], cwd)
    if root is None:
        return GitState(None, None, False, None, None)
    commit = _git(["rev-parse", "HEAD"], cwd)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd) or ""
    dirty = bool(status.strip())
    diff = None
    if dirty:
        text = _git(["diff", "HEAD", "--binary"], cwd) or ""
        diff = text.encode("utf-8")[:DIFF_LIMIT_BYTES]
    return GitState(
        commit.strip() if commit else None,
        branch.strip() if branch else None,
        dirty,
        root.strip(),
        diff,
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gpus() -> list[dict[str, Any]]:
    """The machine's NVIDIA GPUs (name, memory), from ``nvidia-smi``; empty when none.

    Example:
        >>> isinstance(gpus(), list)
        True
    """
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        name, _, memory = line.partition(",")
        if name.strip():
            mib = memory.strip()
            found.append(
                {"name": name.strip(), "memory_bytes": int(mib) * 2**20 if mib.isdigit() else None}
            )
    return found


def packages() -> dict[str, str]:
    """Installed distributions and their versions, sorted by name.

    Example:
        >>> "pyarrow" in packages()
        True
    """
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            found[name.lower()] = dist.version
    return dict(sorted(found.items()))


def describe(
    entry_point: str | None = None, arguments: list[str] | None = None
) -> tuple[dict[str, Any], str | None]:
    """What a new run records about where it runs: :func:`capture` with the git state
    (under ``"git"``), and the diff of uncommitted changes (None when clean or not in git).

    Example:
        >>> env, diff = describe("train.py")
        >>> "python" in env
        True
    """
    env = capture(entry_point, arguments)
    git = git_state(Path(entry_point).parent if entry_point else None)
    env["git"] = git.as_dict()
    return env, git.diff or None


def capture(entry_point: str | None = None, arguments: list[str] | None = None) -> dict[str, Any]:
    """Describe the code, interpreter and machine of the current process.

    Example:
        >>> sorted(capture("train.py"))[:3]
        ['arguments', 'cpu', 'entry_point']
    """
    if entry_point is None and sys.argv and sys.argv[0]:
        entry_point = sys.argv[0]
        arguments = sys.argv[1:] if arguments is None else arguments
    try:
        cpus_usable = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus_usable = os.cpu_count() or 1
    return {
        "entry_point": redact_text(entry_point) if entry_point else entry_point,
        "arguments": redact_arguments(list(arguments or [])),
        "working_dir": os.getcwd(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": packages(),
        "os": {
            "platform": platform.platform(),
            "system": platform.system(),
            "release": platform.release(),
        },
        "host": socket.gethostname(),
        "cpu": {"model": _cpu_model(), "count": os.cpu_count(), "usable": cpus_usable},
        "memory_bytes": _memory_bytes(),
        "gpu": {"devices": gpus()},
        "pid": os.getpid(),
    }
