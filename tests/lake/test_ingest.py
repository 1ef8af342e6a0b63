"""Lake conformance suite: ingest sources, modes, versions and time travel on every backend."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plinth.catalog.lineage import Node, walk
from plinth.errors import (
    ConfigError,
    ParseError,
    SchemaMismatchError,
    SourceError,
    TableNotFoundError,
    VersionNotFoundError,
)

CSV = "id,name,score,seen_at\n1,a,1.5,2024-01-01T00:00:00Z\n2,NA,,2024-01-02T00:00:00Z\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_ingest_records_version_source_and_na(workspace, tmp_path):
    path = write(tmp_path / "people.csv", CSV)
    info = workspace.lake.ingest(str(path), table="people", timestamp="seen_at")
    assert (info.version, info.row_count, info.rows_added, info.operation) == (0, 2, 2, "append")
    assert info.created_by == "tester"
    assert info.source["kind"] == "files"
    assert info.source["files"][0]["path"] == str(path.resolve())
    assert len(info.source["files"][0]["sha256"]) == 64
    types = {c["name"]: c["type"] for c in info.schema}
    assert types == {
        "id": "int64",
        "name": "string",
        "score": "double",
        "seen_at": "timestamp[us, tz=UTC]",
    }
    table = workspace.lake.read("people")
    assert table.column("name").to_pylist() == ["a", None]
    assert table.column("score").to_pylist() == [1.5, None]
    assert workspace.lake.table("people").timestamp_column == "seen_at"


def test_second_ingest_is_version_one_and_version_zero_is_unchanged(workspace, tmp_path):
    first = write(tmp_path / "a.csv", "k,v\n1,10\n2,20\n")
    second = write(tmp_path / "b.csv", "k,v\n3,30\n")
    workspace.lake.ingest(str(first), table="t")
    before = workspace.lake.read("t", version=0)
    info = workspace.lake.ingest(str(second), table="t")
    assert info.version == 1
    assert info.row_count == 3
    assert workspace.lake.read("t", version=0).equals(before)
    assert workspace.lake.read("t").num_rows == 3
    assert [v.version for v in workspace.lake.history("t")] == [0, 1]


def test_time_travel_as_of(workspace):
    workspace.lake.ingest(pa.table({"x": [1]}), table="t")
    between = datetime.now(UTC)
    time.sleep(0.05)
    workspace.lake.ingest(pa.table({"x": [2]}), table="t")
    assert workspace.lake.read("t", as_of=between).column("x").to_pylist() == [1]
    assert workspace.lake.version("t", as_of=datetime.now(UTC)).version == 1
    with pytest.raises(VersionNotFoundError, match="as of"):
        workspace.lake.read("t", as_of=between - timedelta(days=1))


def test_parquet_json_lines_json_array_glob_gz_zip(workspace, tmp_path):
    table = pa.table({"id": [1, 2, 3], "tag": ["x", "y", None]})
    pq.write_table(table, tmp_path / "d.parquet")
    lines = "\n".join(json.dumps(r) for r in table.to_pylist())
    write(tmp_path / "d.jsonl", lines)
    write(tmp_path / "d.json", json.dumps(table.to_pylist()))
    for i in range(3):
        write(tmp_path / f"part-{i}.csv", f"id,tag\n{i},t{i}\n")
    with gzip.open(tmp_path / "d.csv.gz", "wt") as handle:
        handle.write("id,tag\n7,g\n")
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as archive:
        archive.writestr("inner.csv", "id,tag\n8,z\n9,NA\n")

    assert workspace.lake.ingest(str(tmp_path / "d.parquet"), table="p").row_count == 3
    assert workspace.lake.ingest(str(tmp_path / "d.jsonl"), table="jl").row_count == 3
    assert workspace.lake.ingest(str(tmp_path / "d.json"), table="ja").row_count == 3
    globbed = workspace.lake.ingest(str(tmp_path / "part-*.csv"), table="g")
    assert globbed.row_count == 3
    assert len(globbed.source["files"]) == 3
    assert workspace.lake.ingest(str(tmp_path / "d.csv.gz"), table="gz").row_count == 1
    zipped = workspace.lake.ingest(str(tmp_path / "d.zip"), table="z")
    assert zipped.row_count == 2
    assert workspace.lake.read("z").column("tag").to_pylist() == ["z", None]
    assert workspace.lake.read("jl").equals(workspace.lake.read("p"))


def test_in_memory_sources(workspace):
    import polars as pl

    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert workspace.lake.ingest(df, table="pd").source == {
        "kind": "memory",
        "type": "pandas.DataFrame",
        "rows": 2,
    }
    assert workspace.lake.ingest(pl.DataFrame({"a": [1]}), table="pl").row_count == 1
    reader = pa.RecordBatchReader.from_batches(
        pa.schema([("a", pa.int64())]), [pa.record_batch({"a": [1, 2, 3]})]
    )
    assert workspace.lake.ingest(reader, table="rd").row_count == 3
    assert workspace.lake.read("pd").to_pandas().equals(df)


def test_sql_source_records_query_and_redacted_url(workspace, tmp_path):
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table trips (id integer, fare real, city text)")
        conn.executemany(
            "insert into trips values (?, ?, ?)", [(i, i * 1.5, f"c{i % 3}") for i in range(1000)]
        )
    url = f"sqlite:///{db}"
    info = workspace.lake.ingest("select * from trips where id < 500", table="trips", sql_url=url)
    assert info.row_count == 500
    assert info.source["kind"] == "sql"
    assert info.source["query"] == "select * from trips where id < 500"
    with workspace.catalog.session() as session:
        edges = walk(session, Node("table_version", "trips@0"), "up")
    assert [e.source.kind for e in edges] == ["query"]


@pytest.mark.postgres
def test_sql_source_from_postgres_redacts_password(workspace, postgres_db_url):
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table src (id int, label text)"))
        conn.execute(sa.text("insert into src select g, 'l' || g from generate_series(1, 300) g"))
        conn.execute(sa.text("alter user postgres with password 'hunter2'"))
    engine.dispose()
    with_password = postgres_db_url.replace("postgres@", "postgres:hunter2@")
    info = workspace.lake.ingest("select * from src", table="src", sql_url=with_password)
    assert info.row_count == 300
    assert "hunter2" not in json.dumps(info.source)
    assert "***" in info.source["url"]


def test_overwrite_replaces_rows_and_keeps_history(workspace):
    workspace.lake.ingest(pa.table({"a": [1, 2, 3]}), table="t")
    info = workspace.lake.ingest(pa.table({"a": [9]}), table="t", mode="overwrite")
    assert (info.version, info.row_count, info.operation) == (1, 1, "overwrite")
    assert workspace.lake.read("t", version=0).num_rows == 3


def test_upsert_by_key(workspace):
    workspace.lake.ingest(pa.table({"k": [1, 2], "v": ["a", "b"]}), table="t", key="k")
    info = workspace.lake.ingest(pa.table({"k": [2, 3], "v": ["B", "c"]}), table="t", mode="upsert")
    assert info.row_count == 3
    rows = sorted(workspace.lake.read("t").to_pylist(), key=lambda r: r["k"])
    assert rows == [{"k": 1, "v": "a"}, {"k": 2, "v": "B"}, {"k": 3, "v": "c"}]
    assert workspace.lake.table("t").key_columns == ["k"]


def test_upsert_refuses_duplicate_and_null_keys(workspace):
    workspace.lake.ingest(pa.table({"k": [1], "v": ["a"]}), table="t", key="k")
    with pytest.raises(SchemaMismatchError, match="more than one row"):
        workspace.lake.ingest(pa.table({"k": [2, 2], "v": ["x", "y"]}), table="t", mode="upsert")
    with pytest.raises(ParseError, match="null"):
        workspace.lake.ingest(pa.table({"k": [None, 3], "v": ["x", "y"]}), table="t", mode="upsert")
    assert [v.version for v in workspace.lake.history("t")] == [0]


def test_upsert_without_key_is_a_config_error(workspace):
    with pytest.raises(ConfigError, match="key"):
        workspace.lake.ingest(pa.table({"k": [1]}), table="t", mode="upsert")


def test_schema_enforcement_names_columns(workspace):
    workspace.lake.ingest(pa.table({"a": [1], "b": ["x"]}), table="t")
    with pytest.raises(SchemaMismatchError, match=r"new column.*c") as info:
        workspace.lake.ingest(pa.table({"a": [1], "b": ["x"], "c": [1.0]}), table="t")
    assert "--evolve" in str(info.value)
    with pytest.raises(SchemaMismatchError, match=r"missing column.*b"):
        workspace.lake.ingest(pa.table({"a": [2]}), table="t")
    with pytest.raises(SchemaMismatchError, match="'a' is int64 in the table but string"):
        workspace.lake.ingest(pa.table({"a": ["nope"], "b": ["x"]}), table="t")
    assert len(workspace.lake.history("t")) == 1


def test_evolve_adds_columns_and_old_versions_keep_their_schema(workspace):
    workspace.lake.ingest(pa.table({"a": [1]}), table="t")
    info = workspace.lake.ingest(pa.table({"a": [2], "c": ["new"]}), table="t", evolve=True)
    assert [c["name"] for c in info.schema] == ["a", "c"]
    assert workspace.lake.read("t").sort_by("a").column("c").to_pylist() == [None, "new"]
    assert workspace.lake.read("t", version=0).column_names == ["a"]


def test_wrong_type_in_csv_for_existing_column_is_a_parse_error(workspace, tmp_path):
    workspace.lake.ingest(str(write(tmp_path / "a.csv", "n\n1\n")), table="t")
    with pytest.raises(ParseError, match=r"b\.csv"):
        workspace.lake.ingest(str(write(tmp_path / "b.csv", "n\nabc\n")), table="t")
    assert len(workspace.lake.history("t")) == 1


def test_declared_types_override_inference(workspace, tmp_path):
    path = write(tmp_path / "a.csv", "n,when\n1,2024-01-01 10:00:00\n")
    info = workspace.lake.ingest(
        str(path), table="t", types={"n": "float64", "when": "timestamp"}, timestamp="when"
    )
    types = {c["name"]: c["type"] for c in info.schema}
    assert types == {"n": "double", "when": "timestamp[us]"}


def test_timestamp_column_must_exist_and_be_temporal(workspace):
    with pytest.raises(SchemaMismatchError, match="'nope' is not in the input"):
        workspace.lake.ingest(pa.table({"a": [1]}), table="t", timestamp="nope")
    with pytest.raises(SchemaMismatchError, match="not a timestamp"):
        workspace.lake.ingest(pa.table({"a": ["2024"]}), table="t", timestamp="a")
    with pytest.raises(TableNotFoundError):
        workspace.lake.table("t")


def test_unparseable_row_midway_leaves_nothing_half_written(workspace, tmp_path):
    good = "".join(f"{i}\n" for i in range(200_000))
    path = write(tmp_path / "big.csv", "n\n" + good + "oops\n")
    with pytest.raises(ParseError, match=r"big\.csv"):
        workspace.lake.ingest(str(path), table="t", types={"n": "int64"})
    with pytest.raises(TableNotFoundError):
        workspace.lake.table("t")
    from sqlalchemy import select

    from plinth.catalog.models import Ingest

    with workspace.catalog.session() as session:
        statuses = session.scalars(select(Ingest.status)).all()
    assert statuses == ["failed"]


def test_bad_sources_and_names(workspace, tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        workspace.lake.ingest(str(tmp_path / "missing.csv"), table="t")
    with pytest.raises(SourceError, match="format"):
        workspace.lake.ingest(str(write(tmp_path / "x.bin", "1")), table="t")
    with pytest.raises(ConfigError, match="not a valid table name"):
        workspace.lake.ingest(pa.table({"a": [1]}), table="../etc")
    with pytest.raises(ConfigError, match="mode"):
        workspace.lake.ingest(pa.table({"a": [1]}), table="t", mode="merge")
    with pytest.raises(SourceError, match="Cannot ingest an object"):
        workspace.lake.ingest(object(), table="t")
    with pytest.raises(SourceError, match="query"):
        workspace.lake.ingest("select nonsense from nowhere", table="t", sql_url="sqlite://")


def test_unknown_table_and_version(workspace):
    with pytest.raises(TableNotFoundError, match="plinth tables"):
        workspace.lake.read("nope")
    workspace.lake.ingest(pa.table({"a": [1]}), table="t")
    with pytest.raises(VersionNotFoundError, match="version 5"):
        workspace.lake.read("t", version=5)
    with pytest.raises(SchemaMismatchError, match="no column"):
        workspace.lake.read("t", columns=["zzz"])


def test_lineage_links_source_files_to_versions(workspace, tmp_path):
    path = write(tmp_path / "a.csv", "k\n1\n")
    info = workspace.lake.ingest(str(path), table="t")
    with workspace.catalog.session() as session:
        up = walk(session, Node("table_version", "t@0"), "up")
        down = walk(session, up[0].source, "down")
    assert up[0].source == Node("file", f"sha256:{info.source['files'][0]['sha256']}")
    assert up[0].details["path"] == str(path.resolve())
    assert [e.target for e in down] == [Node("table_version", "t@0")]


def test_tables_lists_latest_versions(workspace):
    workspace.lake.ingest(pa.table({"a": [1]}), table="b")
    workspace.lake.ingest(pa.table({"a": [1, 2]}), table="a")
    workspace.lake.ingest(pa.table({"a": [3]}), table="a")
    listed = [
        (t.name, t.version_count, t.latest.version, t.latest.row_count)
        for t in workspace.lake.tables()
    ]
    assert listed == [("a", 2, 1, 3), ("b", 1, 0, 1)]


def test_scan_is_a_dataset_over_the_version(workspace):
    workspace.lake.ingest(pa.table({"a": list(range(10))}), table="t")
    workspace.lake.ingest(pa.table({"a": [100]}), table="t")
    dataset = workspace.lake.scan("t", version=0)
    assert dataset.count_rows() == 10
    assert sum(b.num_rows for b in dataset.to_batches(columns=["a"])) == 10
