"""Encryption at rest: AES-256-GCM with a key from ``PLINTH_ENCRYPTION_KEY`` or a key file.

An encrypted object is a small header followed by the ciphertext::

    magic b"PLNC" | version (1 byte) | key id (8 bytes) | nonce (12 random bytes) | segments

The plaintext is cut into segments of :data:`SEGMENT` bytes (the last may be shorter, even
empty), each sealed with AES-GCM under its own nonce (the object's nonce with the segment
number mixed into its last four bytes). Every segment's associated data is the whole header,
the segment number and whether it is the last one, so a changed header, a reordered, removed
or added segment and a truncated object all fail authentication. Segments let large artifacts
(model weights) stream through in constant memory.

The key id is the first 16 hex characters of the SHA-256 of the key: it is stored in every
header, so an object encrypted with another key is refused with an error naming both ids
rather than failing as "corrupted". The key itself never appears in messages or logs.

Example:
    >>> import base64, os
    >>> cipher = Cipher.from_text(base64.b64encode(os.urandom(32)).decode())
    >>> blob = cipher.encrypt(b"secret weights")
    >>> is_encrypted(blob), cipher.decrypt(blob)
    (True, b'secret weights')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from plinth.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    from plinth._core.settings import Settings

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "SEGMENT",
    "Cipher",
    "decrypt",
    "encrypt",
    "encrypted_size",
    "generate_key",
    "is_encrypted",
    "key_id_of",
    "load_cipher",
]

MAGIC = b"PLNC"
VERSION = 1
KEY_BYTES = 32
KEY_ID_BYTES = 8
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_SIZE = len(MAGIC) + 1 + KEY_ID_BYTES + NONCE_BYTES
#: Plaintext bytes per sealed segment.
SEGMENT = 1 << 20
_SETTING_HINT = (
    "Set PLINTH_ENCRYPTION_KEY (or encryption_key_file) to the base64 of 32 random bytes, "
    "as printed by: openssl rand -base64 32."
)


def key_id(key: bytes) -> str:
    """The id of a key: the first 16 hex characters of its SHA-256.

    Example:
        >>> key_id(bytes(32))
        '66687aadf862bd77'
    """
    return hashlib.sha256(key).hexdigest()[: KEY_ID_BYTES * 2]


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded (what ``PLINTH_ENCRYPTION_KEY`` holds).

    Example:
        >>> len(base64.b64decode(generate_key()))
        32
    """
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _decode_key(text: str, origin: str) -> bytes:
    cleaned = "".join(text.split())
    if not cleaned:
        raise ConfigError(f"The encryption key from {origin} is empty.", hint=_SETTING_HINT)
    try:
        # The URL-safe alphabet (- and _) is accepted too.
        standard = cleaned.translate(str.maketrans("-_", "+/"))
        raw = base64.b64decode(standard.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ConfigError(
            f"The encryption key from {origin} is not valid base64.", hint=_SETTING_HINT
        ) from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(
            f"The encryption key from {origin} is {len(raw)} bytes long; AES-256 needs "
            f"{KEY_BYTES} bytes (44 base64 characters).",
            hint=_SETTING_HINT,
        )
    return raw


def _read_key_file(path_text: str) -> str:
    path = Path(path_text).expanduser()
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise ConfigError(
            f"The encryption key file '{path}' does not exist.",
            hint="Point encryption_key_file (PLINTH_ENCRYPTION_KEY_FILE) at the file holding "
            "the base64 key.",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"The encryption key file '{path}' does not hold base64 text.", hint=_SETTING_HINT
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the encryption key file '{path}': {exc.strerror or exc}.",
            hint="Check the path and that this user may read the file.",
        ) from None


class Cipher:
    """AES-256-GCM with one key: encrypt and decrypt objects in the format described above.

    Example:
        >>> cipher = Cipher(bytes(32))
        >>> cipher.key_id
        '66687aadf862bd77'
        >>> cipher.decrypt(cipher.encrypt(b"x"))
        b'x'
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError(
                f"An encryption key must be {KEY_BYTES} bytes, not {len(key)}.",
                hint=_SETTING_HINT,
            )
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._key = key
        self.key_id = key_id(key)

    def __repr__(self) -> str:
        return f"Cipher(key_id={self.key_id!r})"

    @classmethod
    def from_text(cls, text: str, origin: str = "the given text") -> Cipher:
        """Build a cipher from a base64 key; a bad key raises :class:`ConfigError`.

        Example:
            >>> Cipher.from_text(base64.b64encode(bytes(32)).decode()).key_id
            '66687aadf862bd77'
        """
        return cls(_decode_key(text, origin))

    def derive(self, purpose: str) -> bytes:
        """A 32-byte secret derived from the key for another use (HMAC of ``purpose``).

        Example:
            >>> len(Cipher(bytes(32)).derive("pii-hash"))
            32
        """
        return hmac.new(self._key, b"plinth:" + purpose.encode(), hashlib.sha256).digest()

    # -- one-shot --------------------------------------------------------------------------

    def encrypt(self, data: bytes) -> bytes:
        """Return ``data`` encrypted: header, then the sealed segments.

        Example:
            >>> blob = Cipher(bytes(32)).encrypt(b"abc")
            >>> len(blob) == HEADER_SIZE + 3 + TAG_BYTES
            True
        """
        header = self._header(os.urandom(NONCE_BYTES))
        view = memoryview(data)
        count = max(1, -(-len(data) // SEGMENT))
        parts = [header]
        for index in range(count):
            chunk = view[index * SEGMENT : (index + 1) * SEGMENT]
            parts.append(self._seal(header, index, index == count - 1, bytes(chunk)))
        return b"".join(parts)

    def decrypt(self, blob: bytes, what: str = "The object") -> bytes:
        """Return the plaintext of an encrypted object, after authenticating every segment.

        A different key id raises :class:`ConfigError`; altered bytes raise
        :class:`IntegrityError`.

        Example:
            >>> c = Cipher(bytes(32)); c.decrypt(c.encrypt(b"abc"))
            b'abc'
        """
        header = self._check_header(blob[:HEADER_SIZE], what)
        body = memoryview(blob)[HEADER_SIZE:]
        sealed = SEGMENT + TAG_BYTES
        count = max(1, -(-len(body) // sealed))
        out = []
        for index in range(count):
            chunk = bytes(body[index * sealed : (index + 1) * sealed])
            out.append(self._open(header, index, index == count - 1, chunk, what))
        return b"".join(out)

    # -- streaming -------------------------------------------------------------------------

    def encrypt_stream(self, source: IO[bytes], target: IO[bytes]) -> int:
        """Encrypt everything read from ``source`` into ``target``; return the bytes written.

        Example:
            >>> import io
            >>> c = Cipher(bytes(32)); out = io.BytesIO()
            >>> n = c.encrypt_stream(io.BytesIO(b"abc"), out)
            >>> c.decrypt(out.getvalue())
            b'abc'
        """
        header = self._header(os.urandom(NONCE_BYTES))
        target.write(header)
        written = len(header)
        index = 0
        chunk = _read_full(source, SEGMENT)
        while True:
            following = _read_full(source, SEGMENT) if len(chunk) == SEGMENT else b""
            last = not following
            sealed = self._seal(header, index, last, chunk)
            target.write(sealed)
            written += len(sealed)
            if last:
                return written
            chunk, index = following, index + 1

    def decrypt_stream(
        self, source: IO[bytes], target: IO[bytes], what: str = "The object", hasher: Any = None
    ) -> int:
        """Decrypt an object read from ``source`` into ``target``; return the plaintext size.

        ``hasher`` (a ``hashlib`` object) is fed the plaintext as it is written.

        Example:
            >>> import io
            >>> c = Cipher(bytes(32)); out = io.BytesIO()
            >>> c.decrypt_stream(io.BytesIO(c.encrypt(b"abc")), out), out.getvalue()
            (3, b'abc')
        """
        header = self._check_header(_read_full(source, HEADER_SIZE), what)
        sealed = SEGMENT + TAG_BYTES
        size = 0
        index = 0
        chunk = _read_full(source, sealed)
        while True:
            following = _read_full(source, sealed) if len(chunk) == sealed else b""
            plain = self._open(header, index, not following, chunk, what)
            if hasher is not None:
                hasher.update(plain)
            target.write(plain)
            size += len(plain)
            if not following:
                return size
            chunk, index = following, index + 1

    # -- format ----------------------------------------------------------------------------

    def _header(self, nonce: bytes) -> bytes:
        return MAGIC + bytes([VERSION]) + bytes.fromhex(self.key_id) + nonce

    def _check_header(self, header: bytes, what: str) -> bytes:
        if not is_encrypted(header):
            raise IntegrityError(
                f"{what} is not in Plinth's encrypted format (its header is missing or cut).",
                hint="Restore it from a backup or produce it again.",
            )
        if header[len(MAGIC)] != VERSION:
            raise ConfigError(
                f"{what} uses encryption format version {header[len(MAGIC)]}, which this "
                f"version of Plinth does not read (it reads version {VERSION}).",
                hint="Upgrade Plinth to read it.",
            )
        found = key_id_of(header)
        if found != self.key_id:
            raise ConfigError(
                f"{what} was encrypted with key id {found}, but the configured encryption key "
                f"has id {self.key_id}.",
                hint=f"Set PLINTH_ENCRYPTION_KEY (or encryption_key_file) to the key with id "
                f"{found} to read it.",
            )
        return header

    def _nonce(self, header: bytes, index: int) -> bytes:
        nonce = header[-NONCE_BYTES:]
        (low,) = struct.unpack(">I", nonce[-4:])
        return nonce[:-4] + struct.pack(">I", low ^ index)

    def _aad(self, header: bytes, index: int, last: bool) -> bytes:
        return header + struct.pack(">I?", index, last)

    def _seal(self, header: bytes, index: int, last: bool, chunk: bytes) -> bytes:
        if index >= 1 << 32:
            raise ConfigError("An object this large cannot be encrypted (over 4 PiB).")
        return self._aead.encrypt(self._nonce(header, index), chunk, self._aad(header, index, last))

    def _open(self, header: bytes, index: int, last: bool, chunk: bytes, what: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(
                self._nonce(header, index), chunk, self._aad(header, index, last)
            )
        except InvalidTag:
            raise IntegrityError(
                f"{what} fails authentication: its encrypted bytes were altered, cut short or "
                "extended.",
                hint="Restore it from a backup or produce it again; it will not be used as is.",
            ) from None


def _read_full(source: IO[bytes], size: int) -> bytes:
    parts = []
    while size:
        chunk = source.read(size)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def is_encrypted(data: bytes) -> bool:
    """Whether ``data`` starts like an object in Plinth's encrypted format.

    Example:
        >>> is_encrypted(b"plain text"), is_encrypted(Cipher(bytes(32)).encrypt(b""))
        (False, True)
    """
    return len(data) >= HEADER_SIZE and data[: len(MAGIC)] == MAGIC


def key_id_of(data: bytes) -> str | None:
    """The key id in an encrypted object's header, or ``None`` for other data.

    Example:
        >>> key_id_of(Cipher(bytes(32)).encrypt(b"x"))
        '66687aadf862bd77'
    """
    if not is_encrypted(data):
        return None
    start = len(MAGIC) + 1
    return data[start : start + KEY_ID_BYTES].hex()


def encrypted_size(size: int) -> int:
    """How many bytes an object of ``size`` plaintext bytes takes once encrypted.

    Example:
        >>> encrypted_size(0) == HEADER_SIZE + TAG_BYTES
        True
    """
    segments = max(1, -(-size // SEGMENT))
    return HEADER_SIZE + size + segments * TAG_BYTES


def load_cipher(settings: Settings) -> Cipher | None:
    """The cipher of the configured key (``encryption_key`` or ``encryption_key_file``), or
    ``None`` when neither is set; a bad key raises :class:`ConfigError`.

    Example:
        >>> from plinth._core.settings import Settings
        >>> load_cipher(Settings(home="/tmp/ws")) is None
        True
        >>> load_cipher(Settings(home="/tmp/ws", encryption_key=generate_key())) is not None
        True
    """
    text = settings.encryption_key
    path = settings.encryption_key_file
    if text and path:
        raise ConfigError(
            "Both encryption_key and encryption_key_file are set.",
            hint="Set only one of PLINTH_ENCRYPTION_KEY and PLINTH_ENCRYPTION_KEY_FILE.",
        )
    if text:
        return Cipher.from_text(text, "the encryption_key setting (PLINTH_ENCRYPTION_KEY)")
    if path:
        return Cipher.from_text(_read_key_file(path), f"the key file '{path}'")
    return None


def encrypt(data: bytes, cipher: Cipher) -> bytes:
    """Encrypt ``data`` with ``cipher`` (see :meth:`Cipher.encrypt`).

    Example:
        >>> c = Cipher(bytes(32)); decrypt(encrypt(b"x", c), c)
        b'x'
    """
    return cipher.encrypt(data)


def decrypt(blob: bytes, cipher: Cipher, what: str = "The object") -> bytes:
    """Decrypt ``blob`` with ``cipher`` (see :meth:`Cipher.decrypt`).

    Example:
        >>> c = Cipher(bytes(32)); decrypt(c.encrypt(b"y"), c)
        b'y'
    """
    return cipher.decrypt(blob, what)
