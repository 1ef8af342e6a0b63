"""Checks that the integration-test services really start and answer."""

from __future__ import annotations

import pytest


@pytest.mark.postgres
def test_postgres_db_url_connects(postgres_db_url: str) -> None:
    """A per-test database on the real server answers ``select version()``."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_db_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sqlalchemy.text("select version()")).scalar_one()
            database = conn.execute(sqlalchemy.text("select current_database()")).scalar_one()
    finally:
        engine.dispose()
    assert "PostgreSQL" in version
    assert postgres_db_url.endswith("/" + database)


@pytest.mark.s3
def test_s3_bucket_url_roundtrip(s3_endpoint: str, s3_bucket_url: str) -> None:
    """An object written with s3fs under ``s3_bucket_url`` reads back unchanged."""
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    path = f"{s3_bucket_url}/hello.txt"
    payload = b"hello from plinth\n"
    with fs.open(path, "wb") as fh:
        fh.write(payload)
    with fs.open(path, "rb") as fh:
        assert fh.read() == payload
    assert fs.ls(s3_bucket_url) == [path.removeprefix("s3://")]
