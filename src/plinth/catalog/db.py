"""Opening the catalog: engine per URL, SQLite pragmas, migrations applied safely on open."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from plinth._core.urls import redact_url
from plinth.errors import CatalogError, ConfigError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: The newest migration; a test pins it to Alembic's head so opens skip loading Alembic.
HEAD_REVISION = "0008_governance"
_MIGRATION_LOCK = zlib.crc32(b"plinth-catalog-migrations")


def normalize_url(url: str) -> str:
    """Return a SQLAlchemy URL with Plinth's default driver for each database.

    Example:
        >>> normalize_url("postgresql://u@h/db")
        'postgresql+psycopg://u@h/db'
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _enable_wal(cursor: Any, timeout: float = 60.0) -> None:
    # Switching a fresh file to WAL takes an exclusive lock, and SQLite answers "database is
    # locked" at once (without its busy handler) when another process is switching it too.
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        database = Path(parsed.database).expanduser()
        url = parsed.set(database=str(database)).render_as_string(hide_password=False)
        folder = database.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(
                f"Cannot create the catalog folder '{folder}': {exc.strerror}.",
                hint="Point PLINTH_HOME or PLINTH_DATABASE_URL at a writable location.",
            ) from exc
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue the BEGIN: pysqlite's own deferred BEGIN
        # upgrades to a write lock mid-transaction, which fails instead of waiting.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_catalog_engine(url: str) -> Engine:
    """Create the engine for a catalog URL (SQLite in WAL mode, or PostgreSQL).

    Example:
        >>> create_catalog_engine("sqlite://").dialect.name
        'sqlite'
    """
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"The catalog URL '{redact_url(url)}' is malformed.",
            hint="Use sqlite:///path/to/catalog.db or postgresql://user:pass@host:5432/db.",
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        try:
            return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        except ImportError as exc:
            raise ConfigError(
                "A PostgreSQL catalog needs the 'postgres' extra, which is not installed.",
                hint="Run: pip install 'plinth-ai[postgres]'.",
            ) from exc
    raise ConfigError(
        f"The catalog URL '{redact_url(url)}' uses unsupported database '{backend}'.",
        hint="Use SQLite or PostgreSQL.",
    )


def _current_revision(conn: Connection) -> str | None:
    from sqlalchemy import inspect

    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def migrate(engine: Engine) -> None:
    """Bring the catalog schema to the newest revision; safe when processes race to do it.

    SQLite serializes on ``BEGIN IMMEDIATE``; PostgreSQL on an advisory lock. Whoever waits
    re-reads the revision after the lock and finds nothing left to do.
    """
    with engine.connect() as conn:
        if _current_revision(conn) == HEAD_REVISION:
            return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        if _current_revision(conn) != HEAD_REVISION:
            _upgrade(conn)


class Catalog:
    """The catalog database: one engine, migrations applied on open, one transaction per change.

    Example:
        >>> catalog = Catalog("sqlite://")
        >>> with catalog.session() as s:
        ...     _ = s.execute(text("select 1")).scalar()
        >>> catalog.close()
    """

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = create_catalog_engine(self.url)
        try:
            migrate(self.engine)
        except (OperationalError, DBAPIError) as exc:
            self.engine.dispose()
            raise CatalogError(
                f"Cannot open the catalog at '{redact_url(self.url)}': {exc.orig}.",
                hint="Check the database server is running, the URL (PLINTH_DATABASE_URL) and "
                "that this user may create tables there.",
            ) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """The database kind: ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session whose work commits as one transaction, or rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        """Release the catalog's connections."""
        self.engine.dispose()
