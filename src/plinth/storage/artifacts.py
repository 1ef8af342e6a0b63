"""Content-addressed artifact store: sha256 names, atomic writes, verified reads, deduplication.

With an encryption key configured (``PLINTH_ENCRYPTION_KEY``), the bytes stored are encrypted
(AES-256-GCM, see :mod:`plinth.governance.crypto`) and carry the key id in their header. An
artifact is still named by the sha256 of its *plaintext*, so deduplication and verification work
as before: a read decrypts, then checks the hash. Plaintext artifacts written before a key was
set remain readable.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from plinth._core.files import atomic_writer
from plinth.errors import ConfigError, IntegrityError, NotFoundError, PlinthError
from plinth.storage.backends import CHUNK, Storage
from plinth.storage.keys import safe_key

if TYPE_CHECKING:
    from plinth.governance.crypto import Cipher

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
    (``put_named``) map a safe relative name to a digest. With a ``cipher``, stored bytes are
    encrypted; the digest stays the hash of the plaintext.

    Example:
        >>> import tempfile
        >>> from plinth.storage import open_storage
        >>> store = ArtifactStore(open_storage(tempfile.mkdtemp()))
        >>> a = store.put_bytes(b"x"); b = store.put_bytes(b"x")
        >>> a == b
        True
    """

    def __init__(
        self, storage: Storage, prefix: str = "artifacts", *, cipher: Cipher | None = None
    ) -> None:
        self.storage = storage
        self.prefix = safe_key(prefix)
        self.cipher = cipher

    @property
    def encrypted(self) -> bool:
        """Whether new artifacts are stored encrypted."""
        return self.cipher is not None

    def _key(self, digest: str) -> str:
        return f"{self.prefix}/sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    def _stored_size(self, size: int) -> int:
        if self.cipher is None:
            return size
        from plinth.governance.crypto import encrypted_size

        return encrypted_size(size)

    def _is_current(self, key: str, size: int) -> bool:
        """Whether ``key`` already holds this content as this store would write it now."""
        if self.storage.size(key) != self._stored_size(size):
            return False
        if self.cipher is None:
            return True
        # Same size, but perhaps under an older key: rewrite it under the current one.
        from plinth.governance.crypto import HEADER_SIZE, key_id_of

        try:
            with self.storage.open_read(key) as handle:
                head = handle.read(HEADER_SIZE)
        except NotFoundError:
            return False
        return key_id_of(head) == self.cipher.key_id

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data`` and return its reference; existing content is not written again.

        Example:
            >>> import tempfile
            >>> from plinth.storage import open_storage
            >>> ArtifactStore(open_storage(tempfile.mkdtemp())).put_bytes(b"abc").size
            3
        """
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        if not self._is_current(key, len(data)):
            stored = data if self.cipher is None else self.cipher.encrypt(data)
            self.storage.put_bytes(key, stored)
        return ArtifactRef(digest, len(data))

    def put_file(self, path: str | os.PathLike[str]) -> ArtifactRef:
        """Store a local file and return its reference; existing content is not written again.

        Example:
            >>> import tempfile, pathlib
            >>> from plinth.storage import open_storage
            >>> p = pathlib.Path(tempfile.mkdtemp()) / "w"; _ = p.write_bytes(b"abc")
            >>> ArtifactStore(open_storage(tempfile.mkdtemp())).put_file(p).size
            3
        """
        try:
            digest, size = hash_file(path)
        except FileNotFoundError as exc:
            raise NotFoundError(f"The file '{path}' does not exist.") from exc
        key = self._key(digest)
        if self._is_current(key, size):
            return ArtifactRef(digest, size)
        if self.cipher is None:
            self.storage.put_file(key, path)
            return ArtifactRef(digest, size)
        with tempfile.TemporaryDirectory(prefix="plinth-encrypt-") as folder:
            sealed = Path(folder) / digest
            with open(path, "rb") as source, open(sealed, "wb") as target:
                self.cipher.encrypt_stream(source, target)
            self.storage.put_file(key, sealed)
        return ArtifactRef(digest, size)

    def exists(self, digest: str) -> bool:
        """Return whether an artifact with this digest is stored."""
        return self.storage.exists(self._key(_check_digest(digest)))

    def is_stored_encrypted(self, digest: str) -> bool:
        """Return whether the stored bytes of an artifact are encrypted.

        Example:
            >>> import tempfile
            >>> from plinth.storage import open_storage
            >>> store = ArtifactStore(open_storage(tempfile.mkdtemp()))
            >>> store.is_stored_encrypted(store.put_bytes(b"x").digest)
            False
        """
        from plinth.governance.crypto import HEADER_SIZE, is_encrypted

        with self._open(_check_digest(digest)) as handle:
            return is_encrypted(handle.read(HEADER_SIZE))

    def _open(self, value: str) -> IO[bytes]:
        try:
            return self.storage.open_read(self._key(value))
        except NotFoundError as exc:
            raise NotFoundError(
                f"Artifact sha256:{value} is not in the store at '{self.storage.url}'.",
                hint="Check the workspace (PLINTH_STORAGE_URL) the artifact was written to.",
            ) from exc

    def get_bytes(self, digest: str) -> bytes:
        """Return an artifact's bytes (decrypted if stored encrypted) after checking they hash
        to ``digest``.

        Example:
            >>> import tempfile
            >>> from plinth.storage import open_storage
            >>> store = ArtifactStore(open_storage(tempfile.mkdtemp()))
            >>> store.get_bytes(store.put_bytes(b"abc").digest)
            b'abc'
        """
        from plinth.governance.crypto import is_encrypted

        value = _check_digest(digest)
        with self._open(value) as handle:
            data = handle.read()
        if is_encrypted(data):
            try:
                data = self._cipher_for(value, data).decrypt(data, f"Artifact sha256:{value}")
            except PlinthError:
                # Plaintext that merely starts like an encrypted object is still valid.
                if hashlib.sha256(data).hexdigest() == value:
                    return data
                raise
        actual = hashlib.sha256(data).hexdigest()
        if actual != value:
            raise self._corrupt(value, actual)
        return data

    def _cipher_for(self, value: str, head: bytes) -> Cipher:
        from plinth.governance.crypto import key_id_of

        if self.cipher is None:
            raise ConfigError(
                f"Artifact sha256:{value} is stored encrypted (key id {key_id_of(head)}), and "
                "no encryption key is configured.",
                hint="Set PLINTH_ENCRYPTION_KEY (or encryption_key_file) to the key this "
                "workspace's artifacts were written with.",
            )
        return self.cipher

    def get_file(self, digest: str, destination: str | os.PathLike[str]) -> Path:
        """Copy an artifact to a local file (decrypted if stored encrypted), verified before the
        file appears at ``destination``.

        Example:
            >>> import tempfile, pathlib
            >>> from plinth.storage import open_storage
            >>> store = ArtifactStore(open_storage(tempfile.mkdtemp()))
            >>> ref = store.put_bytes(b"abc")
            >>> store.get_file(ref.digest, pathlib.Path(tempfile.mkdtemp()) / "a").read_bytes()
            b'abc'
        """
        from plinth.governance.crypto import HEADER_SIZE, is_encrypted

        value = _check_digest(digest)
        target = Path(destination)
        with self._open(value) as source:
            head = source.read(HEADER_SIZE)
            encrypted = is_encrypted(head)
        if encrypted:
            try:
                return self._copy(value, target, decrypt=self._cipher_for(value, head))
            except PlinthError as exc:
                # Plaintext that merely starts like an encrypted object is still valid.
                try:
                    return self._copy(value, target, decrypt=None)
                except IntegrityError:
                    raise exc from None
        return self._copy(value, target, decrypt=None)

    def _copy(self, value: str, target: Path, decrypt: Cipher | None) -> Path:
        hasher = hashlib.sha256()

        class _Mismatch(Exception):
            pass

        try:
            with self._open(value) as source, atomic_writer(target) as out:
                if decrypt is not None:
                    decrypt.decrypt_stream(source, out, f"Artifact sha256:{value}", hasher)
                else:
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
        return self.name(name, self.put_bytes(data))

    def name(self, name: str, ref: ArtifactRef) -> ArtifactRef:
        """Point the safe relative ``name`` at an artifact already stored.

        Example:
            >>> # store.name("uploads/models/delay/" + ref.digest, ref)
        """
        record = json.dumps({"digest": ref.digest, "size": ref.size}).encode()
        self.storage.put_bytes(f"{self.prefix}/refs/{safe_key(name)}", record)
        return ref

    def unname(self, name: str) -> None:
        """Remove a name (the artifact it pointed at stays).

        Example:
            >>> # store.unname("uploads/models/delay/" + ref.digest)
        """
        self.storage.delete(f"{self.prefix}/refs/{safe_key(name)}")

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
