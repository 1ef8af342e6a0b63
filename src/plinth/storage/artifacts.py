"""Content-addressed artifact store: sha256 names, atomic writes, verified reads, deduplication."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from plinth._core.files import atomic_writer
from plinth.errors import IntegrityError, NotFoundError
from plinth.storage.backends import CHUNK, Storage
from plinth.storage.keys import safe_key

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact: its sha256 digest and size in bytes."""

    digest: str
    size: int

    @property
    def uri(self) -> str:
        """The artifact's content address, ``sha256:<digest>``."""
        return f"sha256:{self.digest}"


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return the sha256 hex digest and size of a local file, read in 1 MiB chunks.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
        >>> hash_file(p)[0][:8], hash_file(p)[1]
        ('ba7816bf', 3)
    """
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _check_digest(digest: str) -> str:
    value = digest.removeprefix("sha256:")
    if not _DIGEST.match(value):
        raise NotFoundError(
            f"'{digest}' is not an artifact digest.",
            hint="Digests are 64 lowercase hex characters, optionally prefixed 'sha256:'.",
        )
    return value


class ArtifactStore:
    """Store and fetch immutable blobs by the sha256 of their content.

    Writing the same content twice stores it once (a stored copy of the wrong size, say a
    truncated one, is replaced); every read checks the hash, so a corrupted or
    tampered blob raises :class:`IntegrityError` instead of being used. Named references
    (``put_named``) map a safe relative name to a digest.

    Example:
        >>> import tempfile
        >>> from plinth.storage import open_storage
        >>> store = ArtifactStore(open_storage(tempfile.mkdtemp()))
        >>> a = store.put_bytes(b"x"); b = store.put_bytes(b"x")
        >>> a == b
        True
    """

    def __init__(self, storage: Storage, prefix: str = "artifacts") -> None:
        self.storage = storage
        self.prefix = safe_key(prefix)

    def _key(self, digest: str) -> str:
        return f"{self.prefix}/sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data`` and return its reference; existing content is not written again."""
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        if self.storage.size(key) != len(data):
            self.storage.put_bytes(key, data)
        return ArtifactRef(digest, len(data))

    def put_file(self, path: str | os.PathLike[str]) -> ArtifactRef:
        """Store a local file and return its reference; existing content is not written again."""
        try:
            digest, size = hash_file(path)
        except FileNotFoundError as exc:
            raise NotFoundError(f"The file '{path}' does not exist.") from exc
        key = self._key(digest)
        if self.storage.size(key) != size:
            self.storage.put_file(key, path)
        return ArtifactRef(digest, size)

    def exists(self, digest: str) -> bool:
        """Return whether an artifact with this digest is stored."""
        return self.storage.exists(self._key(_check_digest(digest)))

    def get_bytes(self, digest: str) -> bytes:
        """Return an artifact's bytes after checking they hash to ``digest``."""
        value = _check_digest(digest)
        try:
            data = self.storage.read_bytes(self._key(value))
        except NotFoundError as exc:
            raise NotFoundError(
                f"Artifact sha256:{value} is not in the store at '{self.storage.url}'.",
                hint="Check the workspace (PLINTH_STORAGE_URL) the artifact was written to.",
            ) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != value:
            raise self._corrupt(value, actual)
        return data

    def get_file(self, digest: str, destination: str | os.PathLike[str]) -> Path:
        """Copy an artifact to a local file, verified before the file appears at ``destination``."""
        value = _check_digest(digest)
        target = Path(destination)
        hasher = hashlib.sha256()
        try:
            source = self.storage.open_read(self._key(value))
        except NotFoundError as exc:
            raise NotFoundError(f"Artifact sha256:{value} is not in the store.") from exc

        class _Mismatch(Exception):
            pass

        try:
            with source, atomic_writer(target) as out:
                while chunk := source.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                if hasher.hexdigest() != value:
                    raise _Mismatch
        except _Mismatch:
            raise self._corrupt(value, hasher.hexdigest()) from None
        return target

    def _corrupt(self, expected: str, actual: str) -> IntegrityError:
        return IntegrityError(
            f"Artifact sha256:{expected} is corrupted: its content hashes to sha256:{actual}.",
            hint="Restore it from a backup or produce it again; it will not be loaded as is.",
        )

    def put_named(self, name: str, data: bytes) -> ArtifactRef:
        """Store ``data`` and point the safe relative ``name`` at it."""
        ref = self.put_bytes(data)
        record = json.dumps({"digest": ref.digest, "size": ref.size}).encode()
        self.storage.put_bytes(f"{self.prefix}/refs/{safe_key(name)}", record)
        return ref

    def resolve(self, name: str) -> ArtifactRef:
        """Return the reference a name points at."""
        try:
            record = json.loads(self.storage.read_bytes(f"{self.prefix}/refs/{safe_key(name)}"))
        except NotFoundError as exc:
            raise NotFoundError(f"No artifact is named '{name}'.") from exc
        return ArtifactRef(record["digest"], int(record["size"]))

    def get_named(self, name: str) -> bytes:
        """Return the verified bytes a name points at."""
        return self.get_bytes(self.resolve(name).digest)

    def temp_copy(self, digest: str) -> Path:
        """Return a verified local copy of an artifact in a new temporary folder."""
        folder = Path(tempfile.mkdtemp(prefix="plinth-artifact-"))
        return self.get_file(digest, folder / _check_digest(digest))
