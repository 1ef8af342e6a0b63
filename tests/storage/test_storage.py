"""Storage conformance: the same suite on a local folder and on S3, plus the artifact store.

Every backend must store and read blobs, list and delete by prefix, refuse unsafe keys with
:class:`UnsafePathError`, and report missing keys with :class:`NotFoundError`. The artifact
store on top of it deduplicates by content and never hands back bytes that fail their hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import plinth.storage.backends as backends
from plinth.errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    StorageError,
    UnsafePathError,
)
from plinth.storage import ArtifactRef, ArtifactStore, Storage, open_storage

UNSAFE_KEYS = ["../x", "/etc/passwd", "a/%2e%2e/b"]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """An empty storage root on each backend."""
    if request.param == "local":
        return open_storage(tmp_path / "store")
    return open_storage(request.getfixturevalue("s3_bucket_url"))


@pytest.fixture
def store(storage: Storage) -> ArtifactStore:
    """An artifact store on each backend."""
    return ArtifactStore(storage)


def _is_s3(storage: Storage) -> bool:
    return storage.url.startswith("s3://")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- Storage


def test_put_bytes_and_read_bytes(storage: Storage) -> None:
    storage.put_bytes("a/b/c.bin", b"\x00\x01payload")
    assert storage.read_bytes("a/b/c.bin") == b"\x00\x01payload"
    storage.put_bytes("a/b/c.bin", b"replaced")
    assert storage.read_bytes("a/b/c.bin") == b"replaced"
    storage.put_bytes("empty", b"")
    assert storage.read_bytes("empty") == b""


def test_keys_are_normalized(storage: Storage) -> None:
    storage.put_bytes("x//y/", b"1")
    assert storage.read_bytes("x/y") == b"1"
    assert list(storage.list()) == ["x/y"]


def test_put_file(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"file content" * 1000)
    storage.put_file("files/one.bin", source)
    assert storage.read_bytes("files/one.bin") == source.read_bytes()
    storage.put_file("files/two.bin", str(source))
    assert storage.exists("files/two.bin")


def test_put_file_from_a_missing_source(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        storage.put_file("k", tmp_path / "missing.bin")
    assert not storage.exists("k")


def test_open_read_streams(storage: Storage) -> None:
    storage.put_bytes("stream", b"0123456789")
    with storage.open_read("stream") as handle:
        assert handle.read(4) == b"0123"
        assert handle.read() == b"456789"


def test_exists(storage: Storage) -> None:
    assert not storage.exists("nothing")
    storage.put_bytes("dir/file", b"1")
    assert storage.exists("dir/file")
    assert storage.exists("dir")
    assert not storage.exists("dir/other")
    assert not storage.exists("di")


def test_missing_key_raises_not_found(storage: Storage) -> None:
    with pytest.raises(NotFoundError):
        storage.open_read("missing/key")
    with pytest.raises(NotFoundError):
        storage.read_bytes("missing")


def test_delete_file_and_prefix(storage: Storage) -> None:
    for key in ["p/a", "p/q/b", "p/q/c", "keep/d", "pp/e"]:
        storage.put_bytes(key, key.encode())
    storage.delete("p/a")
    assert not storage.exists("p/a")
    assert storage.exists("p/q/b")
    storage.delete("p")
    assert not storage.exists("p/q/b")
    assert not storage.exists("p")
    assert sorted(storage.list()) == ["keep/d", "pp/e"]
    storage.delete("never/there")
    storage.delete("p")


def test_list(storage: Storage) -> None:
    assert list(storage.list()) == []
    keys = ["a/1", "a/b/2", "a/b/c/3", "ab/4", "z"]
    for key in reversed(keys):
        storage.put_bytes(key, b"x")
    assert list(storage.list()) == keys
    assert list(storage.list("a")) == ["a/1", "a/b/2", "a/b/c/3"]
    assert list(storage.list("a/b")) == ["a/b/2", "a/b/c/3"]
    assert list(storage.list("a/b/c/3")) == ["a/b/c/3"]
    assert list(storage.list("missing")) == []


def test_uri(storage: Storage) -> None:
    assert storage.uri() == storage.url
    assert storage.uri("a/b.bin") == storage.url + "/a/b.bin"
    if _is_s3(storage):
        assert storage.uri("a").startswith("s3://")
    else:
        assert Path(storage.uri("a")).is_absolute()


def test_check_writable_leaves_nothing_behind(storage: Storage) -> None:
    storage.check_writable()
    assert list(storage.list()) == []


@pytest.mark.parametrize("key", UNSAFE_KEYS)
@pytest.mark.parametrize(
    "method",
    ["put_bytes", "put_file", "open_read", "read_bytes", "exists", "delete", "list", "uri"],
)
def test_unsafe_keys_are_refused_by_every_method(
    storage: Storage,
    tmp_path: Path,
    method: str,
    key: str,
) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"data")
    calls: dict[str, Any] = {
        "put_bytes": lambda: storage.put_bytes(key, b"data"),
        "put_file": lambda: storage.put_file(key, source),
        "open_read": lambda: storage.open_read(key),
        "read_bytes": lambda: storage.read_bytes(key),
        "exists": lambda: storage.exists(key),
        "delete": lambda: storage.delete(key),
        "list": lambda: list(storage.list(key)),
        "uri": lambda: storage.uri(key),
    }
    with pytest.raises(UnsafePathError):
        calls[method]()


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_write_nothing(storage: Storage, key: str) -> None:
    with pytest.raises(StorageError):
        storage.put_bytes(key, b"data")
    assert list(storage.list()) == []


@pytest.mark.parametrize(
    "method", ["put_bytes", "put_file", "open_read", "read_bytes", "exists", "delete"]
)
def test_empty_key_is_refused(storage: Storage, tmp_path: Path, method: str) -> None:
    # Only list() and uri() take "" to mean the root; any other method must refuse it.
    storage.put_bytes("keep/me", b"1")
    source = tmp_path / "src.bin"
    source.write_bytes(b"data")
    calls: dict[str, Any] = {
        "put_bytes": lambda: storage.put_bytes("", b"data"),
        "put_file": lambda: storage.put_file("", source),
        "open_read": lambda: storage.open_read(""),
        "read_bytes": lambda: storage.read_bytes(""),
        "exists": lambda: storage.exists(""),
        "delete": lambda: storage.delete(""),
    }
    with pytest.raises(UnsafePathError):
        calls[method]()
    assert list(storage.list()) == ["keep/me"]


# --------------------------------------------------------------------------- ArtifactStore


def test_artifact_put_bytes_returns_digest_and_size(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"weights")
    assert ref == ArtifactRef(_sha(b"weights"), 7)
    assert ref.uri == f"sha256:{ref.digest}"
    assert store.get_bytes(ref.digest) == b"weights"
    assert store.get_bytes(ref.uri) == b"weights"
    assert store.exists(ref.digest)
    assert store.exists(ref.uri)


def test_same_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    source = tmp_path / "same.bin"
    source.write_bytes(b"same")
    third = store.put_file(source)
    assert first == second == third
    assert len(list(store.storage.list("artifacts"))) == 1
    store.put_bytes(b"different")
    assert len(list(store.storage.list("artifacts"))) == 2


def test_existing_content_is_not_written_again(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = store.put_bytes(b"once")

    def refuse(*_args: object) -> None:
        raise AssertionError("stored content was written again")

    monkeypatch.setattr(store.storage, "put_bytes", refuse)
    monkeypatch.setattr(store.storage, "put_file", refuse)
    assert store.put_bytes(b"once") == ref


def test_get_bytes_detects_tampering(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"genuine").digest
    store.storage.put_bytes(store._key(digest), b"evil")
    with pytest.raises(IntegrityError) as info:
        store.get_bytes(digest)
    assert digest in str(info.value)
    assert _sha(b"evil") in str(info.value)


def test_get_file_on_tampered_object_leaves_no_file(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_bytes(b"genuine" * 1000).digest
    store.storage.put_bytes(store._key(digest), b"evil")
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "model.bin"
    with pytest.raises(IntegrityError) as info:
        store.get_file(digest, destination)
    assert digest in str(info.value)
    assert not destination.exists()
    assert list(out.iterdir()) == []


def test_get_file_on_tampered_object_keeps_previous_file(
    store: ArtifactStore, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"genuine").digest
    store.storage.put_bytes(store._key(digest), b"evil")
    destination = tmp_path / "model.bin"
    destination.write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        store.get_file(digest, destination)
    assert destination.read_bytes() == b"previous"


def test_put_file_and_get_file_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    ref = store.put_file(source)
    assert ref == ArtifactRef(_sha(data), len(data))
    destination = tmp_path / "copy" / "nested" / "big.bin"
    assert store.get_file(ref.digest, destination) == destination
    assert destination.read_bytes() == data
    assert [p.name for p in destination.parent.iterdir()] == ["big.bin"]
    copy = store.temp_copy(ref.uri)
    try:
        assert copy.read_bytes() == data
    finally:
        shutil.rmtree(copy.parent)


def test_put_file_missing_source(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        store.put_file(tmp_path / "missing.bin")


def test_named_artifacts(store: ArtifactStore) -> None:
    ref = store.put_named("models/delay/latest", b"v1")
    assert store.resolve("models/delay/latest") == ref
    assert store.get_named("models/delay/latest") == b"v1"
    newer = store.put_named("models/delay/latest", b"v2")
    assert newer != ref
    assert store.get_named("models/delay/latest") == b"v2"
    assert store.get_bytes(ref.digest) == b"v1"
    with pytest.raises(NotFoundError):
        store.resolve("models/none")
    with pytest.raises(NotFoundError):
        store.get_named("models/none")


@pytest.mark.parametrize("name", UNSAFE_KEYS)
def test_unsafe_artifact_names_are_refused(store: ArtifactStore, name: str) -> None:
    with pytest.raises(UnsafePathError):
        store.put_named(name, b"x")
    with pytest.raises(UnsafePathError):
        store.resolve(name)


@pytest.mark.parametrize(
    "digest", ["xyz", "sha256:" + "g" * 64, "A" * 64, "a" * 63, "", "sha256:", "../" + "a" * 61]
)
def test_bad_digests_raise_not_found(store: ArtifactStore, tmp_path: Path, digest: str) -> None:
    with pytest.raises(NotFoundError):
        store.get_bytes(digest)
    with pytest.raises(NotFoundError):
        store.exists(digest)
    with pytest.raises(NotFoundError):
        store.get_file(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_artifact(store: ArtifactStore, tmp_path: Path) -> None:
    digest = _sha(b"never stored")
    assert not store.exists(digest)
    with pytest.raises(NotFoundError):
        store.get_bytes(digest)
    with pytest.raises(NotFoundError):
        store.get_file(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- local only


@pytest.fixture
def local(tmp_path: Path) -> Storage:
    """A storage in a local folder."""
    return open_storage(tmp_path / "store")


def _all_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_unwritable_root_raises_storage_error(tmp_path: Path) -> None:
    # Running as root ignores permission bits, so make the root a regular file instead.
    root = tmp_path / "not-a-folder"
    root.write_text("occupied")
    storage = open_storage(root)
    with pytest.raises(StorageError):
        storage.check_writable()
    with pytest.raises(StorageError):
        storage.put_bytes("k", b"x")
    assert root.read_text() == "occupied"


def test_atomic_write_leaves_no_temp_files_after_success(local: Storage, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"abc")
    local.put_bytes("a/one", b"1")
    local.put_file("a/two", source)
    local.put_bytes("a/one", b"overwritten")
    assert _all_files(tmp_path / "store") == ["a/one", "a/two"]


def test_atomic_write_leaves_no_temp_files_after_failure(
    local: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.put_bytes("a/kept", b"original")
    source = tmp_path / "src"
    source.write_bytes(b"x" * 10_000)

    def broken_copy(src: Any, dst: Any, length: int = 0) -> None:
        dst.write(src.read(100))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backends.shutil, "copyfileobj", broken_copy)
    with pytest.raises(StorageError, match="No space left"):
        local.put_file("a/new", source)
    with pytest.raises(StorageError):
        local.put_file("a/kept", source)
    assert _all_files(tmp_path / "store") == ["a/kept"]
    assert local.read_bytes("a/kept") == b"original"


def test_failed_rename_leaves_no_temp_files(
    local: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.put_bytes("kept", b"original")

    def broken_replace(*_args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError):
        local.put_bytes("kept", b"new")
    monkeypatch.undo()
    assert _all_files(tmp_path / "store") == ["kept"]
    assert local.read_bytes("kept") == b"original"


def test_symlink_out_of_the_root_is_refused(local: Storage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    root = tmp_path / "store"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file-link").symlink_to(outside / "secret")
    for key in ["link/secret", "link/new", "file-link"]:
        with pytest.raises(UnsafePathError):
            local.read_bytes(key)
        with pytest.raises(UnsafePathError):
            local.exists(key)
        with pytest.raises(UnsafePathError):
            local.put_bytes(key, b"overwrite")
        with pytest.raises(UnsafePathError):
            local.uri(key)
    with pytest.raises(UnsafePathError):
        list(local.list("link"))
    with pytest.raises(UnsafePathError):
        local.delete("link")
    with pytest.raises(UnsafePathError):
        local.delete("link/secret")
    assert (outside / "secret").read_bytes() == b"secret"
    assert _all_files(outside) == ["secret"]
    assert "link/secret" not in list(local.list())


def test_symlink_inside_the_root_is_allowed(local: Storage, tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    local.put_bytes("alias/x", b"1")
    assert local.read_bytes("real/x") == b"1"


def test_file_url_opens_local_storage(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}/store")
    storage.put_bytes("k", b"v")
    assert (tmp_path / "store" / "k").read_bytes() == b"v"
    assert storage.url == str((tmp_path / "store").resolve())


@pytest.mark.parametrize("url", ["ftp://host/x", "gs://bucket/x", "http://h/p"])
def test_unsupported_storage_url(url: str) -> None:
    with pytest.raises(ConfigError):
        open_storage(url)


# --------------------------------------------------------------------------- S3 only


@pytest.mark.s3
def test_missing_bucket_is_not_writable(s3_endpoint: str) -> None:
    storage = open_storage("s3://plinth-no-such-bucket-4b1d/prefix")
    with pytest.raises(StorageError):
        storage.check_writable()


@pytest.mark.s3
def test_s3_storage_options_name_the_endpoint(s3_bucket_url: str, s3_endpoint: str) -> None:
    storage = open_storage(s3_bucket_url)
    options = storage.storage_options()
    assert options["AWS_ENDPOINT_URL"] == s3_endpoint
    assert options["AWS_ALLOW_HTTP"] == "true"
    assert options["AWS_REGION"]
