"""Blob storage backends behind one interface, chosen by URL: a local folder or ``s3://``."""

from __future__ import annotations

import contextlib
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from plinth._core.files import atomic_writer
from plinth.errors import ConfigError, NotFoundError, StorageError, UnsafePathError
from plinth.storage.keys import safe_key

CHUNK = 1 << 20


class Storage(ABC):
    """A flat namespace of immutable-by-convention blobs under one root URL.

    Keys are validated with :func:`safe_key`; a key can never address anything outside the root.
    """

    url: str

    @abstractmethod
    def put_file(self, key: str, source: str | os.PathLike[str]) -> None:
        """Copy a local file to ``key`` atomically (readers see all of it or none)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` to ``key`` atomically."""

    @abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """Open ``key`` for reading; raise :class:`NotFoundError` if it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether ``key`` exists."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Return the size of ``key`` in bytes, or ``None`` if it does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key`` (a file or a whole prefix); missing keys are ignored."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys of files under ``prefix``, relative to the root."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """Return the full URL of ``key`` for engines that address storage directly (Delta)."""

    def storage_options(self) -> dict[str, str]:
        """Return the options Delta Lake needs to reach this storage (credentials, endpoint)."""
        return {}

    def arrow_filesystem(self) -> Any:
        """Return a native ``pyarrow.fs`` filesystem for this storage, or ``None`` for local."""
        return None

    def read_bytes(self, key: str) -> bytes:
        """Return the whole content of ``key``.

        Example:
            >>> import tempfile
            >>> s = open_storage(tempfile.mkdtemp()); s.put_bytes("a/b", b"1"); s.read_bytes("a/b")
            b'1'
        """
        with self.open_read(key) as handle:
            return handle.read()

    def check_writable(self) -> None:
        """Raise :class:`StorageError` if the root cannot be written."""
        probe = f".plinth-probe-{os.getpid()}"
        try:
            self.put_bytes(probe, b"ok")
            self.delete(probe)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(
                f"Storage at '{self.url}' is not writable: {exc}.",
                hint="Check the path or bucket exists and that this user may write to it "
                "(PLINTH_STORAGE_URL).",
            ) from exc


class LocalStorage(Storage):
    """Storage in a local folder; writes go through a temp file, fsync and rename."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / safe_key(key)).resolve()
        if path != self.root and self.root not in path.parents:
            raise UnsafePathError(
                f"The storage name {key!r} resolves outside the storage root '{self.root}'.",
                hint="Remove the symbolic link that points out of the storage root.",
            )
        return path

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the storage folder '{self.root}': {exc.strerror}.",
                hint="Choose a writable location with PLINTH_STORAGE_URL or PLINTH_HOME.",
            ) from exc

    def put_file(self, key: str, source: str | os.PathLike[str]) -> None:
        self._ensure_root()
        target = self._path(key)
        try:
            with open(source, "rb") as src, atomic_writer(target) as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        except OSError as exc:
            raise StorageError(
                f"Cannot write '{key}' to storage '{self.root}': {exc.strerror}.",
                hint="Check the storage folder is writable and has free space.",
            ) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        self._ensure_root()
        target = self._path(key)
        try:
            with atomic_writer(target) as dst:
                dst.write(data)
        except OSError as exc:
            raise StorageError(
                f"Cannot write '{key}' to storage '{self.root}': {exc.strerror}.",
                hint="Check the storage folder is writable and has free space.",
            ) from exc

    def open_read(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            return open(path, "rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"'{key}' does not exist in storage '{self.root}'.") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return
        if base.is_file():
            yield base.relative_to(self.root).as_posix()
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".plinth-probe"):
                yield path.relative_to(self.root).as_posix()

    def uri(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)


class FsspecStorage(Storage):
    """Storage on an object store through fsspec (``s3://bucket/prefix`` with s3fs).

    The endpoint and credentials come from the usual ``AWS_*`` environment variables, so the
    same settings serve AWS S3, MinIO or any S3-compatible server.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise ConfigError(f"Unsupported storage URL '{url}'.", hint="Use s3://bucket/prefix.")
        try:
            import s3fs
        except ImportError as exc:
            raise ConfigError(
                "s3:// storage needs the 's3' extra, which is not installed.",
                hint="Run: pip install 'plinth-ai[s3]'.",
            ) from exc
        self.url = url.rstrip("/")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        client_kwargs: dict[str, Any] = {}
        if self.endpoint:
            client_kwargs["endpoint_url"] = self.endpoint
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            client_kwargs["region_name"] = region
        self.fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, use_listings_cache=False)

    def _root(self) -> str:
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def _full(self, key: str) -> str:
        # Validated before any request: an empty or unsafe key never reaches the bucket.
        return f"{self._root()}/{safe_key(key)}"

    def _wrap(self, key: str, exc: Exception) -> StorageError:
        return StorageError(
            f"Storage operation on '{key}' at '{self.url}' failed: {exc}.",
            hint="Check the bucket exists, the endpoint (AWS_ENDPOINT_URL) and the credentials.",
        )

    def put_file(self, key: str, source: str | os.PathLike[str]) -> None:
        # A single S3 PUT (or a completed multipart upload) is atomic: readers see all or nothing.
        path = self._full(key)
        try:
            self.fs.put_file(str(source), path)
        except Exception as exc:
            raise self._wrap(key, exc) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._full(key)
        try:
            self.fs.pipe_file(path, data)
        except Exception as exc:
            raise self._wrap(key, exc) from exc

    def open_read(self, key: str) -> IO[bytes]:
        path = self._full(key)
        try:
            return self.fs.open(path, "rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"'{key}' does not exist in storage '{self.url}'.") from exc
        except Exception as exc:
            raise self._wrap(key, exc) from exc

    def exists(self, key: str) -> bool:
        path = self._full(key)
        try:
            return bool(self.fs.exists(path))
        except Exception as exc:
            raise self._wrap(key, exc) from exc

    def size(self, key: str) -> int | None:
        path = self._full(key)
        try:
            return int(self.fs.info(path)["size"])
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._wrap(key, exc) from exc

    def delete(self, key: str) -> None:
        path = self._full(key)
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._wrap(key, exc) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        root = self._root()
        base = self._full(prefix) if prefix else root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._wrap(prefix, exc) from exc
        for path in sorted(found):
            rel = path[len(root) :].lstrip("/")
            if not rel.startswith(".plinth-probe"):
                yield rel

    def uri(self, key: str = "") -> str:
        return "s3://" + (self._full(key) if key else self._root())

    def arrow_filesystem(self) -> Any:
        from pyarrow import fs

        kwargs: dict[str, Any] = {
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "session_token": os.environ.get("AWS_SESSION_TOKEN"),
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        }
        if self.endpoint:
            parts = urlsplit(self.endpoint)
            kwargs["endpoint_override"] = parts.netloc
            kwargs["scheme"] = parts.scheme or "https"
        return fs.S3FileSystem(**{k: v for k, v in kwargs.items() if v is not None})

    def storage_options(self) -> dict[str, str]:
        options: dict[str, str] = {}
        if self.endpoint:
            options["AWS_ENDPOINT_URL"] = self.endpoint
            if self.endpoint.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        for env in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if os.environ.get(env):
                options[env] = os.environ[env]
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        options["AWS_REGION"] = region or "us-east-1"
        # S3 has no atomic rename-if-absent; delta-rs uses conditional puts (If-None-Match) so
        # concurrent writers cannot overwrite each other's commits.
        options.setdefault("conditional_put", "etag")
        return options


def open_storage(url: str | os.PathLike[str]) -> Storage:
    """Return the storage backend for ``url``: ``s3://`` through fsspec, anything else local.

    Example:
        >>> import tempfile
        >>> open_storage(tempfile.mkdtemp()).exists("nothing")
        False
    """
    text = str(url)
    if text.startswith("s3://"):
        return FsspecStorage(text)
    if text.startswith("file://"):
        text = urlsplit(text).path
    elif "://" in text:
        raise ConfigError(
            f"Unsupported storage URL '{text}'.",
            hint="Use a local path, file:///path or s3://bucket/prefix.",
        )
    return LocalStorage(text)
