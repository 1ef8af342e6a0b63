"""Local files: atomic writes (temp file in the same folder, fsync, rename, fsync the folder)
and reads that fail with a clear error."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a binary file that appears at ``path`` only once fully written and synced.

    A crash leaves either the old file or the new one, never a half-written file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
        >>> with atomic_writer(p) as f:
        ...     _ = f.write(b"hello")
        >>> p.read_bytes()
        b'hello'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    # mkstemp creates the file 0600; give it the mode a plain open() would under the umask.
    os.fchmod(fd, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "b.txt"
        >>> atomic_write_bytes(p, b"x")
        >>> p.read_bytes()
        b'x'
    """
    with atomic_writer(path) as handle:
        handle.write(data)


def read_text(
    path: str | os.PathLike[str], *, what: str, hint: str, error: type[Exception] | None = None
) -> str:
    """The UTF-8 text of ``path``; an unreadable file raises ``error`` (a
    :class:`~plinth.errors.ConfigError` by default) naming ``what`` it is and the reason.

    Example:
        >>> read_text("/nonexistent", what="the space", hint="Check it.")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        plinth.errors.ConfigError: Cannot read the space '/nonexistent': No such file ...
    """
    from plinth.errors import ConfigError

    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise (error or ConfigError)(
            f"Cannot read {what} '{file}': {exc.strerror or exc}.", hint=hint
        ) from None
