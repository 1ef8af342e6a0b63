"""Encrypted lake tables: Parquet modular encryption under the workspace key, in a Delta log."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

import plinth
from plinth.errors import ConfigError
from plinth.governance.crypto import Cipher, generate_key
from plinth.lake import duck
from plinth.lake.encryption import SUFFIX, file_key_id
from tests.serving.conftest import Harness, served_home

__all__ = ["served_home"]

SECRET = "passenger-4242"


def _ws(home: Path, key: str | None) -> plinth.Workspace:
    extra = {"encryption_key": key} if key else {}
    return plinth.Workspace(settings=plinth.Settings(home=home, user="tester", **extra))


def _files(home: Path, table: str) -> list[Path]:
    return sorted((home / "storage" / "lake" / table).glob("*.parquet"))


@pytest.fixture
def key() -> str:
    return generate_key()


def test_encrypted_appends_read_back_and_hold_no_plaintext(tmp_path: Path, key: str) -> None:
    with _ws(tmp_path, key) as ws:
        first = pa.table({"n": [1, 2], "who": [SECRET, "other"]})
        ws.lake.ingest(first, table="log", encrypt=True, checks=False)
        later = pa.table({"n": [3], "who": ["third"], "score": [0.5]})
        info = ws.lake.ingest(later, table="log", encrypt=True, evolve=True, checks=False)
        assert info.row_count == 3
        read = ws.lake.read("log").sort_by("n")
        assert read.to_pydict() == {
            "n": [1, 2, 3],
            "who": [SECRET, "other", "third"],
            "score": [None, None, 0.5],
        }
        added, latest, complete = ws.lake.added_since("log", 0)
        assert (latest, complete) == (info.version, False)
        assert added.to_table().column("who").to_pylist() == ["third"]
        key_id = Cipher.from_text(key).key_id
    files = _files(tmp_path, "log")
    assert len(files) == 2
    for path in files:
        assert path.name.endswith(SUFFIX) and file_key_id(str(path)) == key_id
        data = path.read_bytes()
        assert data.endswith(b"PARE")  # encrypted footer
        assert SECRET.encode() not in data and b"who" not in data


def test_a_table_needs_its_key_to_be_read(tmp_path: Path, key: str) -> None:
    with _ws(tmp_path, key) as ws:
        ws.lake.ingest(pa.table({"who": [SECRET]}), table="log", encrypt=True)
    with _ws(tmp_path, None) as ws, pytest.raises(ConfigError, match="no encryption key"):
        ws.lake.read("log")
    with _ws(tmp_path, generate_key()) as ws, pytest.raises(ConfigError, match="configured key"):
        ws.lake.read("log")
    with _ws(tmp_path, key) as ws:
        assert ws.lake.read("log").column("who").to_pylist() == [SECRET]


def test_plaintext_and_encrypted_files_read_together(tmp_path: Path, key: str) -> None:
    with _ws(tmp_path, None) as ws:
        ws.lake.ingest(pa.table({"n": [1]}), table="log", encrypt=True)  # no key: plaintext
    with _ws(tmp_path, key) as ws:
        ws.lake.ingest(pa.table({"n": [2]}), table="log", encrypt=True)
        assert sorted(ws.lake.read("log").column("n").to_pylist()) == [1, 2]
        # DuckDB cannot unwrap the keys: such datasets are read through Arrow.
        assert duck.local_parquet_files(ws.lake.scan("log")) == []
    assert [file_key_id(str(p)) is None for p in _files(tmp_path, "log")].count(True) == 1


def test_delete_rewrites_encrypted_files(tmp_path: Path, key: str) -> None:
    with _ws(tmp_path, key) as ws:
        ws.lake.ingest(
            pa.table({"n": [1, 2, 3], "who": ["a", SECRET, "c"]}), table="log", encrypt=True
        )
        before = ws.lake.version("log").version
        info = ws.lake.delete("log", "who = 'passenger-4242'")
        assert info.version > before
        assert sorted(ws.lake.read("log").column("n").to_pylist()) == [1, 3]
        assert ws.lake.delete("log", "n > 100").version == info.version  # nothing matched
        assert ws.lake.read("log", version=before).num_rows == 3  # time travel keeps it
        with pytest.raises(ConfigError, match="predicate"):
            ws.lake.delete("log", "no_such_column = 1")
        assert ws.lake.delete("log").row_count == 0
    live = [p for p in _files(tmp_path, "log")]
    assert all(file_key_id(str(p)) for p in live)


def test_upserts_into_encrypted_tables_are_refused(tmp_path: Path, key: str) -> None:
    with _ws(tmp_path, key) as ws:
        ws.lake.ingest(pa.table({"k": [1], "v": [1.0]}), table="log", encrypt=True)
        with pytest.raises(ConfigError, match="appends and overwrites"):
            ws.lake.ingest(
                pa.table({"k": [1], "v": [2.0]}), table="log", mode="upsert", key="k", encrypt=True
            )
        ws.lake.ingest(
            pa.table({"k": [5], "v": [5.0]}), table="log", mode="overwrite", encrypt=True
        )
        assert ws.lake.read("log").to_pydict() == {"k": [5], "v": [5.0]}


def test_served_predictions_are_logged_encrypted(
    served_home: Path, tmp_path: Path, key: str
) -> None:
    home = tmp_path / "ws"
    shutil.copytree(served_home, home)
    ws = _ws(home, key)
    xs = [0.5, -1.0, 0.25]

    async def body(client):
        answer = await client.post(
            "/v1/models/risk/predict",
            json={"records": [{"k": k, "x": x} for k, x in enumerate(xs)]},
        )
        assert answer.status_code == 200, answer.text

    try:
        Harness(ws, ["risk@champion"], log_predictions=True).run(body)
        logged = ws.lake.read("predictions__risk")
        assert logged.column("x").to_pylist() == xs
    finally:
        ws.close()
    files = _files(home, "predictions__risk")
    assert files and all(p.name.endswith(SUFFIX) for p in files)
    with _ws(home, None) as plain, pytest.raises(ConfigError, match="predictions__risk"):
        plain.lake.read("predictions__risk")


def test_quarantined_rows_are_encrypted_and_still_released(tmp_path: Path, key: str) -> None:
    from plinth.quality.contracts import Contract

    with _ws(tmp_path, key) as ws:
        ws.quality.apply(Contract(table="people", columns={"age": {"min": 0}, "who": {}}))
        rows = pa.table({"age": [30, -1], "who": ["ok", SECRET]})
        assert ws.lake.ingest(rows, table="people").row_count == 1
        assert ws.quality.quarantined("people").column("who").to_pylist() == [SECRET]
        files = _files(tmp_path, "people__quarantine")
        assert files and all(file_key_id(str(p)) for p in files)
        assert not any(SECRET.encode() in p.read_bytes() for p in files)
        released = ws.quality.release("people", force=True)
        assert released.released == 1
        assert sorted(ws.lake.read("people").column("who").to_pylist()) == ["ok", SECRET]
        assert ws.quality.quarantined("people").num_rows == 0
