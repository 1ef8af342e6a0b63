"""Secrets (passwords in URLs, tokens) never reach the catalog, run params or logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import plinth
from plinth._core.urls import redact_arguments, redact_text, redact_value
from plinth.errors import SourceError
from plinth.pipelines import pipeline, run, step

SECRET = "hunter2-S3CRET-9c41"
TOKEN = "plt_Zq8Zq8Zq8Zq8Zq8Zq8Zq8Zq8Zq8Zq8Zq8Zq8Zq8Zq8x"
URL = f"postgresql://reader:{SECRET}@db.example.com:5432/warehouse"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[plinth.Workspace]:
    workspace = plinth.Workspace(settings=plinth.Settings(home=tmp_path / "ws", user="tester"))
    yield workspace
    workspace.close()


def catalog_text(ws: plinth.Workspace) -> str:
    """Every row of every catalog table, as text."""
    from sqlalchemy import MetaData, select

    metadata = MetaData()
    with ws.catalog.session() as session:
        metadata.reflect(bind=session.get_bind())
        parts = []
        for table in metadata.sorted_tables:
            for row in session.execute(select(table)):
                parts.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(parts)


def storage_bytes(ws: plinth.Workspace) -> bytes:
    """Every file under the storage root (Delta logs, data files, artifacts)."""
    root = Path(ws.settings.storage_root)
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def assert_clean(ws: plinth.Workspace, *texts: str) -> None:
    dumped = catalog_text(ws)
    assert dumped  # something was recorded
    stored = storage_bytes(ws)
    for secret in (SECRET, TOKEN, TOKEN[4:]):
        assert secret not in dumped
        assert secret.encode() not in stored
        for text in texts:
            assert secret not in text


# -- helpers -------------------------------------------------------------------------------


def test_redaction_helpers_cover_urls_tokens_and_named_values():
    assert SECRET not in redact_text(f"connect to {URL} using {TOKEN}")
    assert TOKEN not in redact_text(f"Authorization: Bearer {TOKEN}")
    assert redact_text("https://bucket.s3/x?X-Amz-Signature=abc123&v=1") == (
        "https://bucket.s3/x?X-Amz-Signature=***&v=1"
    )
    assert redact_text("lr=0.1 depth=6 http://host/path") == "lr=0.1 depth=6 http://host/path"
    assert redact_arguments(["--password", SECRET, f"--url={URL}", "--epochs", "3"]) == [
        "--password",
        "***",
        "--url=postgresql://reader:***@db.example.com:5432/warehouse",
        "--epochs",
        "3",
    ]
    assert redact_value({"client_secret": 42, "nested": [URL], "max_tokens": 7}) == {
        "client_secret": "***",
        "nested": ["postgresql://reader:***@db.example.com:5432/warehouse"],
        "max_tokens": 7,
    }


# -- runs ----------------------------------------------------------------------------------


def test_run_params_tags_arguments_and_errors_hide_secrets(ws, caplog):
    from plinth.tracking.run import start_run

    caplog.set_level(logging.DEBUG)
    params = {"db": URL, "api_token": TOKEN, "db_password": SECRET, "note": f"key {TOKEN}"}
    with ws.run("exp", params={**params, "lr": 0.1}, tags={"source": URL}) as first:
        first.log_param("extra", f"mysql://u:{SECRET}@h/d")
    detail = ws.runs.get(first.id)
    assert detail.params["db"] == "postgresql://reader:***@db.example.com:5432/warehouse"
    assert detail.params["db_password"] == "***" and detail.params["api_token"] == "***"
    assert detail.params["lr"] == "0.1"
    # The command line of a launched script, captured or not.
    arguments = ["--db", URL, "--token", "raw-token-value", f"--auth={TOKEN}"]
    for capture in (True, False):
        launched = start_run(
            ws, "exp", entry_point="train.py", arguments=arguments, capture=capture
        )
        launched.end("finished")
    assert "raw-token-value" not in catalog_text(ws)
    # A failing run keeps its error text, secrets masked.
    with pytest.raises(RuntimeError), ws.run("exp", capture=False):
        raise RuntimeError(f"could not connect to {URL} with {TOKEN}")
    assert "could not connect to postgresql://reader:***@" in catalog_text(ws)
    assert_clean(ws, caplog.text)


# -- ingest --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://reader:{SECRET}@127.0.0.1:1/warehouse",  # nothing listens there
        f"postgresql://reader:{SECRET}@db.example.com:notaport/warehouse",  # malformed
        f"nosuchdb://reader:{SECRET}@db.example.com/warehouse",
    ],
    ids=["unreachable", "malformed", "unknown-dialect"],
)
def test_a_failed_sql_ingest_records_no_secret(ws, caplog, url):
    caplog.set_level(logging.DEBUG)
    ws.lake.ingest(pa.table({"a": [1]}), table="seed")  # so the catalog has rows either way
    with pytest.raises(SourceError) as caught:
        ws.lake.ingest("SELECT 1 AS a", table="copied", sql_url=url)
    assert "reader:***@" in str(caught.value)
    assert_clean(ws, str(caught.value), caplog.text)


@pytest.mark.postgres
def test_a_sql_ingest_records_no_secret(ws, caplog, postgres_db_url):
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_db_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE trips (id int, fare float)"))
        connection.execute(sqlalchemy.text("INSERT INTO trips VALUES (1, 9.5), (2, 12.0)"))
    engine.dispose()
    # The test server trusts local connections, so any password is accepted.
    scheme, rest = postgres_db_url.split("://", 1)
    user, host = rest.split("@", 1)
    url = f"{scheme}://{user.split(':')[0]}:{SECRET}@{host}"
    caplog.set_level(logging.DEBUG)
    info = ws.lake.ingest("SELECT * FROM trips", table="trips", sql_url=url)
    assert info.row_count == 2
    assert_clean(ws, caplog.text)
    assert "***" in catalog_text(ws)


# -- pipelines -----------------------------------------------------------------------------


@step
def connect(url: str, password: str) -> int:
    return len(url) + len(password)


@pipeline
def load(url: str = "sqlite:///x.db", password: str = ""):
    return connect(url, password)


def test_pipeline_params_are_recorded_without_secrets(ws, caplog):
    caplog.set_level(logging.DEBUG)
    result = run(load, {"url": URL, "password": SECRET}, ws=ws)
    assert result.succeeded and result.value == len(URL) + len(SECRET)
    text = catalog_text(ws)
    assert "postgresql://reader:***@db.example.com" in text
    assert_clean(ws, caplog.text)
