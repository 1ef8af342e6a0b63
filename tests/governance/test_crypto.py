"""Encryption at rest: round trips, tamper detection, key ids and bad keys."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from plinth._core.settings import Settings
from plinth.errors import ConfigError, IntegrityError
from plinth.governance import crypto
from plinth.governance.crypto import (
    HEADER_SIZE,
    SEGMENT,
    Cipher,
    decrypt,
    encrypt,
    encrypted_size,
    generate_key,
    is_encrypted,
    key_id_of,
    load_cipher,
)


@pytest.fixture
def cipher() -> Cipher:
    return Cipher.from_text(generate_key())


@pytest.mark.parametrize("size", [0, 1, 1000, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT])
def test_round_trip_bytes_and_streams(cipher: Cipher, size: int) -> None:
    data = os.urandom(size)
    blob = encrypt(data, cipher)
    assert is_encrypted(blob)
    assert len(blob) == encrypted_size(size)
    assert data not in blob or size < 16
    assert decrypt(blob, cipher) == data
    # Streams produce and read the same format.
    out = io.BytesIO()
    written = cipher.encrypt_stream(io.BytesIO(data), out)
    assert written == len(out.getvalue()) == encrypted_size(size)
    assert cipher.decrypt(out.getvalue()) == data
    plain = io.BytesIO()
    assert cipher.decrypt_stream(io.BytesIO(blob), plain) == size
    assert plain.getvalue() == data


def test_every_encryption_uses_a_fresh_nonce(cipher: Cipher) -> None:
    assert cipher.encrypt(b"same") != cipher.encrypt(b"same")


def test_header_holds_the_key_id(cipher: Cipher) -> None:
    blob = cipher.encrypt(b"x")
    assert blob[:4] == b"PLNC"
    assert key_id_of(blob) == cipher.key_id
    assert len(cipher.key_id) == 16
    import hashlib

    raw = base64.b64decode(generate_key())
    assert Cipher(raw).key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert key_id_of(b"plain bytes") is None
    assert not is_encrypted(b"PLNC")  # too short to hold a header


@pytest.mark.parametrize(
    "position",
    [0, 4, 5, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3, -1],
    ids=["magic", "version", "key-id", "nonce", "first-byte", "middle", "tag"],
)
def test_any_changed_byte_is_detected(cipher: Cipher, position: int) -> None:
    blob = bytearray(cipher.encrypt(b"model weights" * 10))
    blob[position] ^= 0x01
    with pytest.raises((IntegrityError, ConfigError)):
        cipher.decrypt(bytes(blob))


def test_truncation_and_extension_are_detected(cipher: Cipher) -> None:
    data = os.urandom(2 * SEGMENT + 10)
    blob = cipher.encrypt(data)
    sealed = SEGMENT + 16
    for broken in (
        blob[:-1],
        blob[: HEADER_SIZE + sealed],  # the first segment alone, cut at a boundary
        blob[:HEADER_SIZE],
        blob + cipher.encrypt(b"x")[HEADER_SIZE:],
    ):
        with pytest.raises(IntegrityError, match="fails authentication"):
            cipher.decrypt(broken)
    # Swapping two segments fails too.
    body = blob[HEADER_SIZE:]
    swapped = blob[:HEADER_SIZE] + body[sealed : 2 * sealed] + body[:sealed] + body[2 * sealed :]
    with pytest.raises(IntegrityError):
        cipher.decrypt(swapped)
    with pytest.raises(IntegrityError):
        cipher.decrypt_stream(io.BytesIO(blob[:-5]), io.BytesIO())


def test_another_key_is_refused_naming_both_ids(cipher: Cipher) -> None:
    other = Cipher.from_text(generate_key())
    blob = other.encrypt(b"secret")
    with pytest.raises(ConfigError) as info:
        cipher.decrypt(blob, "Artifact sha256:ab")
    text = str(info.value)
    assert other.key_id in text and cipher.key_id in text
    assert "Artifact sha256:ab" in text


def test_plaintext_is_not_taken_for_ciphertext(cipher: Cipher) -> None:
    with pytest.raises(IntegrityError, match="not in Plinth's encrypted format"):
        cipher.decrypt(b"just some plaintext that is long enough")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64 at all!", "not valid base64"),
        (base64.b64encode(os.urandom(16)).decode(), "is 16 bytes long"),
        (base64.b64encode(os.urandom(33)).decode(), "is 33 bytes long"),
        ("   ", "is empty"),
    ],
)
def test_bad_keys_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_cipher(Settings(home="/tmp/ws", encryption_key=text))
    assert "PLINTH_ENCRYPTION_KEY" in str(info.value)
    if text.strip():
        assert text not in str(info.value)  # the key is never echoed


def test_url_safe_base64_and_whitespace_are_accepted() -> None:
    raw = os.urandom(32)
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    assert Cipher.from_text(f"  {urlsafe}\n").key_id == Cipher(raw).key_id


def test_key_from_file(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "key"
    path.write_text(key + "\n")
    from_file = load_cipher(Settings(home=tmp_path, encryption_key_file=str(path)))
    from_setting = load_cipher(Settings(home=tmp_path, encryption_key=key))
    assert from_file is not None and from_setting is not None
    assert from_file.key_id == from_setting.key_id
    assert load_cipher(Settings(home=tmp_path)) is None


def test_key_file_problems_are_clear(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="does not exist"):
        load_cipher(Settings(home=tmp_path, encryption_key_file=str(missing)))
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ConfigError, match="Cannot read the encryption key file"):
        load_cipher(Settings(home=tmp_path, encryption_key_file=str(folder)))
    binary = tmp_path / "binary"
    binary.write_bytes(os.urandom(32) + b"\xff")
    with pytest.raises(ConfigError, match="base64"):
        load_cipher(Settings(home=tmp_path, encryption_key_file=str(binary)))
    short = tmp_path / "short"
    short.write_text(base64.b64encode(b"x" * 8).decode())
    with pytest.raises(ConfigError, match="8 bytes long") as info:
        load_cipher(Settings(home=tmp_path, encryption_key_file=str(short)))
    assert str(short) in str(info.value)


def test_both_key_settings_at_once_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(generate_key())
    with pytest.raises(ConfigError, match="Both encryption_key and encryption_key_file"):
        load_cipher(
            Settings(home=tmp_path, encryption_key=generate_key(), encryption_key_file=str(path))
        )


def test_cipher_repr_hides_the_key() -> None:
    raw = os.urandom(32)
    cipher = Cipher(raw)
    assert repr(cipher) == f"Cipher(key_id='{cipher.key_id}')"
    assert raw.hex() not in repr(cipher)
    assert "derive" in dir(crypto.Cipher)
    assert cipher.derive("a") != cipher.derive("b") and len(cipher.derive("a")) == 32
