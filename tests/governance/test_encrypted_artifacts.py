"""Artifacts encrypted at rest: stored bytes are ciphertext, reads decrypt and verify."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plinth
from plinth.errors import ConfigError, IntegrityError
from plinth.governance.crypto import Cipher, generate_key, is_encrypted
from plinth.storage import ArtifactStore, open_storage

MARKER = b"PLAINTEXT-MARKER-7f3a9c"


def _stored_files(ws: plinth.Workspace) -> list[Path]:
    root = Path(ws.settings.storage_root) / "artifacts" / "sha256"
    return [p for p in root.rglob("*") if p.is_file()]


def _grep(ws: plinth.Workspace, needle: bytes) -> list[Path]:
    return [p for p in _stored_files(ws) if needle in p.read_bytes()]


@pytest.fixture
def key() -> str:
    return generate_key()


@pytest.fixture
def ws(tmp_path: Path, key: str) -> Iterator[plinth.Workspace]:
    settings = plinth.Settings(home=tmp_path / "ws", user="tester", encryption_key=key)
    workspace = plinth.Workspace(settings=settings)
    yield workspace
    workspace.close()


def _without_key(ws: plinth.Workspace) -> plinth.Workspace:
    return plinth.Workspace(settings=plinth.Settings(home=ws.home, user="tester"))


def test_logged_artifacts_are_encrypted_on_disk(ws: plinth.Workspace, tmp_path: Path) -> None:
    payload = MARKER * 1000
    source = tmp_path / "notes.txt"
    source.write_bytes(payload + b"file")
    with ws.run("exp", capture=False) as run:
        run.log_artifact(payload, "notes.bin")
        run.log_artifact(source)
    assert ws.artifacts.encrypted
    files = _stored_files(ws)
    assert len(files) == 2
    assert all(is_encrypted(p.read_bytes()) for p in files)
    assert _grep(ws, MARKER) == []
    detail = ws.runs.get(run.id)
    digests = {a.name: a.digest for a in detail.artifacts}
    # Names are the plaintext's sha256, so reads decrypt and verify.
    assert ws.artifacts.get_bytes(digests["notes.bin"]) == payload
    copy = ws.artifacts.get_file(digests["notes.txt"], tmp_path / "copy.txt")
    assert copy.read_bytes() == payload + b"file"
    assert {a.size for a in detail.artifacts} == {len(payload), len(payload) + 4}


def test_dedupe_keeps_working(ws: plinth.Workspace) -> None:
    first = ws.artifacts.put_bytes(MARKER)
    (path,) = _stored_files(ws)
    stamp = path.stat().st_mtime_ns
    second = ws.artifacts.put_bytes(MARKER)
    assert first == second
    assert path.stat().st_mtime_ns == stamp  # not written again


def test_registered_model_loads_with_the_key_only(ws: plinth.Workspace) -> None:
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"secret_feature": np.arange(20.0)})
    model = LinearRegression().fit(frame, np.arange(20.0) * 2)
    info = ws.models.register(model, "enc", example=frame.head(3))
    predicted = ws.models.load(f"enc:{info.version}").predict(frame.head(2))
    assert np.allclose(predicted, [0.0, 2.0])
    assert all(is_encrypted(p.read_bytes()) for p in _stored_files(ws))
    assert _grep(ws, b"secret_feature") == []  # neither the pickle nor the example
    other = _without_key(ws)
    try:
        with pytest.raises(ConfigError) as caught:
            other.models.load(f"enc:{info.version}")
        text = str(caught.value)
        assert "encrypted" in text and "PLINTH_ENCRYPTION_KEY" in text
        assert Cipher.from_text(ws.settings.encryption_key).key_id in text
    finally:
        other.close()


def test_a_different_key_is_refused_naming_both_ids(ws: plinth.Workspace) -> None:
    ref = ws.artifacts.put_bytes(MARKER)
    settings = plinth.Settings(home=ws.home, user="tester", encryption_key=generate_key())
    with plinth.Workspace(settings=settings) as other:
        with pytest.raises(ConfigError) as caught:
            other.artifacts.get_bytes(ref.digest)
        text = str(caught.value)
        assert ws.artifacts.cipher.key_id in text and other.artifacts.cipher.key_id in text


def test_tampered_ciphertext_is_an_integrity_error(ws: plinth.Workspace, tmp_path: Path) -> None:
    ref = ws.artifacts.put_bytes(MARKER * 10)
    (path,) = _stored_files(ws)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        ws.artifacts.get_bytes(ref.digest)
    with pytest.raises(IntegrityError):
        ws.artifacts.get_file(ref.digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_plaintext_written_before_the_key_stays_readable(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "storage")
    plain = ArtifactStore(storage)
    ref = plain.put_bytes(MARKER)
    sealed = ArtifactStore(storage, cipher=Cipher.from_text(generate_key()))
    assert sealed.get_bytes(ref.digest) == MARKER
    assert not sealed.is_stored_encrypted(ref.digest)
    # Writing the same content again with a key stores it encrypted.
    sealed.put_bytes(MARKER)
    assert sealed.is_stored_encrypted(ref.digest)
    assert sealed.get_bytes(ref.digest) == MARKER


def test_plaintext_that_looks_encrypted_is_still_plaintext(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "storage")
    lookalike = b"PLNC\x01" + b"\x00" * 40
    ref = ArtifactStore(storage).put_bytes(lookalike)
    for store in (ArtifactStore(storage), ArtifactStore(storage, cipher=Cipher(bytes(32)))):
        assert store.get_bytes(ref.digest) == lookalike
        assert store.get_file(ref.digest, tmp_path / "x").read_bytes() == lookalike


def test_rekeyed_write_replaces_an_object_under_an_old_key(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "storage")
    old = ArtifactStore(storage, cipher=Cipher.from_text(generate_key()))
    new = ArtifactStore(storage, cipher=Cipher.from_text(generate_key()))
    ref = old.put_bytes(MARKER)
    with pytest.raises(ConfigError):
        new.get_bytes(ref.digest)
    new.put_bytes(MARKER)
    assert new.get_bytes(ref.digest) == MARKER


def test_large_files_stream_through(ws: plinth.Workspace, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 7)
    source.write_bytes(data)
    ref = ws.artifacts.put_file(source)
    assert ref.size == len(data)
    out = ws.artifacts.get_file(ref.digest, tmp_path / "back.bin")
    assert out.read_bytes() == data
    assert ws.artifacts.temp_copy(ref.digest).read_bytes() == data


def test_key_file_setting_encrypts_too(tmp_path: Path, key: str) -> None:
    path = tmp_path / "plinth.key"
    path.write_text(key)
    settings = plinth.Settings(home=tmp_path / "ws", user="t", encryption_key_file=str(path))
    with plinth.Workspace(settings=settings) as ws:
        ref = ws.artifacts.put_bytes(MARKER)
        assert ws.artifacts.is_stored_encrypted(ref.digest)
        assert _grep(ws, MARKER) == []


def test_pipeline_steps_in_child_processes_use_the_key(ws: plinth.Workspace) -> None:
    from plinth.pipelines import run
    from tests.pipelines import flows

    result = run(flows.simple, {"n": 5}, ws=ws)
    assert result.succeeded and result.value == 10
    assert result.outputs["numbers"] == [0, 1, 2, 3, 4]
    files = _stored_files(ws)
    assert files and all(is_encrypted(p.read_bytes()) for p in files)
    assert _grep(ws, b"making 5 numbers") == []  # the step's captured log
