"""Catalog conformance: the same suite on SQLite and PostgreSQL.

Opening a catalog migrates it to the newest schema exactly once, even when processes race;
the ORM models match the migrations; sessions are transactions; datetimes come back as aware
UTC; lineage edges are idempotent and walkable.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, func, inspect, select, text

from plinth.catalog import Catalog, Edge, Node, add_edge, walk
from plinth.catalog import db as catalog_db
from plinth.catalog.db import HEAD_REVISION, MIGRATIONS_DIR
from plinth.catalog.models import Base, LakeTable, LineageEdge, TableVersion
from plinth.errors import CatalogError, ConfigError, PlinthError

FOUNDATION_TABLES = {"lake_tables", "table_versions", "ingests", "lineage_edges", "alembic_version"}
OPENERS = 6


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a catalog that does not exist yet, on each supported database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/catalog.db"
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    """An open, migrated catalog."""
    opened = Catalog(catalog_url)
    yield opened
    opened.close()


def _revisions(catalog: Catalog) -> list[str]:
    with catalog.engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _lake_table(name: str, created_at: datetime | None = None) -> LakeTable:
    return LakeTable(
        name=name,
        location=f"lake/{name}",
        key_columns=["id"],
        created_at=created_at or datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        created_by="tester",
    )


# --------------------------------------------------------------------------- schema


def test_head_revision_is_alembics_head() -> None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert script.get_heads() == [HEAD_REVISION]
    assert script.get_current_head() == HEAD_REVISION


def test_open_creates_every_table_at_head(catalog: Catalog) -> None:
    tables = set(inspect(catalog.engine).get_table_names())
    assert tables >= FOUNDATION_TABLES
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert _revisions(catalog) == [HEAD_REVISION]


def test_reopen_is_a_no_op(catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Catalog(catalog_url).close()

    def refuse(_conn: object) -> None:
        raise AssertionError("an up-to-date catalog was migrated again")

    monkeypatch.setattr(catalog_db, "_upgrade", refuse)
    for _ in range(2):
        again = Catalog(catalog_url)
        try:
            assert _revisions(again) == [HEAD_REVISION]
        finally:
            again.close()


def test_models_match_migrations(catalog: Catalog) -> None:
    # Nothing is ignored: on both dialects the schema Alembic builds must be exactly what the
    # ORM models declare (types, nullability, indexes, unique and foreign keys).
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_foreign_keys_cascade(catalog: Catalog) -> None:
    with catalog.session() as session:
        table = _lake_table("flights")
        session.add(table)
        session.flush()
        session.add(
            TableVersion(
                table_id=table.id,
                version=0,
                operation="create",
                row_count=1,
                rows_added=1,
                bytes=10,
                num_files=1,
                schema=[],
                source={},
                created_at=datetime.now(UTC),
                created_by="tester",
            )
        )
    # A core DELETE bypasses the ORM cascade: the database itself must remove the versions.
    with catalog.session() as session:
        session.execute(delete(LakeTable).where(LakeTable.name == "flights"))
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(TableVersion)) == 0


# --------------------------------------------------------------------------- concurrent open


def _open_catalog_worker(url: str, barrier: Any, results: Any, index: int) -> None:
    """Open ``url`` in a fresh process; report whether this process ran the migrations."""
    ran = []
    try:
        original = catalog_db._upgrade

        def counting_upgrade(conn: Any) -> None:
            ran.append(True)
            original(conn)

        catalog_db._upgrade = counting_upgrade
        barrier.wait(timeout=60)
        catalog = Catalog(url)
        try:
            with catalog.engine.connect() as conn:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        finally:
            catalog.close()
        results.put((index, "ok", len(ran), revision))
    except BaseException:
        results.put((index, "error", len(ran), traceback.format_exc()))


def test_concurrent_first_open_migrates_once(catalog_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(OPENERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_open_catalog_worker, args=(catalog_url, barrier, results, i))
        for i in range(OPENERS)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    errors = [detail for _, status, _, detail in outcomes if status != "ok"]
    assert errors == []
    assert {revision for *_, revision in outcomes} == {HEAD_REVISION}
    assert sum(ran for _, _, ran, _ in outcomes) == 1
    catalog = Catalog(catalog_url)
    try:
        assert _revisions(catalog) == [HEAD_REVISION]
        assert set(inspect(catalog.engine).get_table_names()) >= FOUNDATION_TABLES
    finally:
        catalog.close()


# --------------------------------------------------------------------------- sessions


def test_session_commits_on_success(catalog: Catalog) -> None:
    with catalog.session() as session:
        session.add(_lake_table("kept"))
    with catalog.session() as session:
        names = session.scalars(select(LakeTable.name)).all()
    assert names == ["kept"]


def test_session_rolls_back_on_exception(catalog: Catalog) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), catalog.session() as session:
        session.add(_lake_table("lost"))
        session.flush()
        raise Boom
    with catalog.session() as session:
        assert session.scalars(select(LakeTable.name)).all() == []


def test_session_rolls_back_on_constraint_violation(catalog: Catalog) -> None:
    with catalog.session() as session:
        session.add(_lake_table("unique"))
    with pytest.raises(Exception), catalog.session() as session:  # noqa: B017
        session.add(_lake_table("other"))
        session.add(_lake_table("unique"))
    with catalog.session() as session:
        assert session.scalars(select(LakeTable.name)).all() == ["unique"]


def test_dialect(catalog: Catalog, catalog_url: str) -> None:
    expected = "sqlite" if catalog_url.startswith("sqlite") else "postgresql"
    assert catalog.dialect == expected


@pytest.mark.parametrize(
    "written",
    [
        datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC),
        datetime(2024, 3, 1, 1, 30, 0, 654321, tzinfo=timezone(timedelta(hours=2))),
        datetime(1999, 12, 31, 19, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_utc_datetimes_round_trip_aware(catalog: Catalog, written: datetime) -> None:
    with catalog.session() as session:
        session.add(_lake_table("t", created_at=written))
    with catalog.session() as session:
        read = session.scalars(select(LakeTable.created_at)).one()
    assert read.tzinfo is not None
    assert read.utcoffset() == timedelta(0)
    assert read == written


# --------------------------------------------------------------------------- lineage

FILE = Node("file", "sha256:" + "ab" * 32)
VERSION = Node("table_version", "flights@0")
TRAINING = Node("training_set", "ts-1")


def _chain(catalog: Catalog) -> None:
    with catalog.session() as session:
        add_edge(session, FILE, VERSION, "ingested", {"rows": 3})
        add_edge(session, VERSION, TRAINING, "selected")


def _count_edges(catalog: Catalog) -> int:
    with catalog.session() as session:
        return session.scalar(select(func.count()).select_from(LineageEdge)) or 0


def test_add_edge_is_idempotent(catalog: Catalog) -> None:
    with catalog.session() as session:
        add_edge(session, FILE, VERSION, "ingested")
        add_edge(session, FILE, VERSION, "ingested")
    with catalog.session() as session:
        add_edge(session, FILE, VERSION, "ingested", {"again": True})
    assert _count_edges(catalog) == 1
    with catalog.session() as session:
        add_edge(session, FILE, VERSION, "validated")
    assert _count_edges(catalog) == 2


def test_walk_up_and_down_a_three_level_chain(catalog: Catalog) -> None:
    _chain(catalog)
    first = Edge(FILE, VERSION, "ingested", {"rows": 3})
    second = Edge(VERSION, TRAINING, "selected", None)
    with catalog.session() as session:
        assert walk(session, TRAINING, "up") == [second, first]
        assert walk(session, TRAINING, "up", depth=1) == [second]
        assert walk(session, FILE, "down") == [first, second]
        assert walk(session, FILE, "down", depth=1) == [first]
        assert walk(session, VERSION, "up") == [first]
        assert walk(session, VERSION, "down") == [second]
        assert walk(session, FILE, "up") == []
        assert walk(session, TRAINING, "down") == []
        assert walk(session, TRAINING, "up", depth=0) == []


def test_walk_fans_in_and_terminates_on_cycles(catalog: Catalog) -> None:
    other_file = Node("file", "sha256:" + "cd" * 32)
    with catalog.session() as session:
        add_edge(session, FILE, VERSION, "ingested")
        add_edge(session, other_file, VERSION, "ingested")
        add_edge(session, VERSION, FILE, "weird")
    with catalog.session() as session:
        up = walk(session, VERSION, "up")
    assert {(e.source, e.target) for e in up} == {
        (FILE, VERSION),
        (other_file, VERSION),
        (VERSION, FILE),
    }
    assert len(up) == 3


def test_walk_rejects_unknown_direction(catalog: Catalog) -> None:
    with catalog.session() as session, pytest.raises(ValueError, match="direction"):
        walk(session, FILE, "sideways")


def test_node_str() -> None:
    assert str(VERSION) == "table_version:flights@0"


# --------------------------------------------------------------------------- opening errors


def test_unreachable_postgres_raises_catalog_error_without_password() -> None:
    with pytest.raises(CatalogError) as info:
        Catalog("postgresql://nobody:s3cr3t-pw@127.0.0.1:1/x")
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert "nobody:***@127.0.0.1:1" in message


@pytest.mark.parametrize("url", ["not a url", "", "mysql://u@h/db", "oracle://u:pw@h/db"])
def test_malformed_or_unsupported_url_raises_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Catalog(url)
    assert "pw@" not in str(info.value)


@pytest.mark.parametrize("url", ["postgresql://u:pw@host:notaport/db"])
def test_url_with_bad_port_raises_config_error(url: str) -> None:
    with pytest.raises(PlinthError) as info:
        Catalog(url)
    assert isinstance(info.value, ConfigError)
    assert "pw@" not in str(info.value)


def test_sqlite_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CatalogError):
        Catalog(f"sqlite:///{blocker}/sub/catalog.db")


def test_sqlite_url_with_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    catalog = Catalog("sqlite:///~/plinth/catalog.db")
    catalog.close()
    assert (home / "plinth" / "catalog.db").is_file()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
    try:
        with catalog.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        catalog.close()


def test_in_memory_sqlite_catalog() -> None:
    catalog = Catalog("sqlite://")
    try:
        assert catalog.dialect == "sqlite"
        with catalog.session() as session:
            add_edge(session, FILE, VERSION, "ingested")
            assert len(walk(session, VERSION, "up")) == 1
    finally:
        catalog.close()


@pytest.mark.postgres
def test_postgres_scheme_alias_is_accepted(postgres_db_url: str) -> None:
    alias = postgres_db_url.replace("postgresql+psycopg://", "postgres://", 1)
    catalog = Catalog(alias)
    try:
        assert catalog.dialect == "postgresql"
        assert _revisions(catalog) == [HEAD_REVISION]
    finally:
        catalog.close()
