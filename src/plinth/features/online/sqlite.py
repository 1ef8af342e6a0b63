"""The embedded online store: one SQLite file (WAL), one table per feature view.

Each view's table ``"fv_<view>"`` holds one row per entity: the encoded entity key (primary
key), the event time in microseconds, the id of the value schema and the JSON value array.
An upsert replaces a row only when the new event time is at least the stored one. Writes run
in one transaction each, with the rows sorted by key and sent many per statement; reads look
keys up through the primary key. Every thread gets its own connection.

A commit makes a write durable and visible (it is in the write-ahead log); copying the log
back into the database file (the checkpoint) runs on a background thread after each write
instead of inside the committing call, and a final checkpoint runs on close.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from plinth._core.clock import utcnow
from plinth.errors import ConfigError, SchemaMismatchError, StorageError
from plinth.features.online.base import (
    Batch,
    Found,
    OnlineRow,
    OnlineStore,
    ValueSchema,
    assemble,
    check_view_name,
    encode_entity,
    prepare_write,
)

BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 65_536
PAGE_SIZE = 16_384
ROWS_PER_STATEMENT = 250
KEYS_PER_SELECT = 500

_VARIABLE_LIMIT = getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", 9)

_META = (
    "CREATE TABLE IF NOT EXISTS plinth_online_views ("
    " name TEXT PRIMARY KEY, keys TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS plinth_online_schemas ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL UNIQUE, fields TEXT NOT NULL)",
)


def _table(view: str) -> str:
    # The view name is validated (letters, digits, underscores), so quoting is enough.
    return f'"fv_{check_view_name(view)}"'


def _no_table(exc: sqlite3.OperationalError) -> bool:
    return str(exc).startswith("no such table")


class SQLiteOnlineStore(OnlineStore):
    """Online store in one SQLite file, safe to share between threads and processes.

    Example:
        >>> import tempfile
        >>> store = SQLiteOnlineStore(tempfile.mkdtemp() + "/online.db")
        >>> store.views(), store.count("weather")
        ([], 0)
        >>> store.close()
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._schemas: dict[int, ValueSchema] = {}
        self._schema_ids: dict[str, int] = {}
        self._closed = False
        self._checkpoints = _Checkpointer(self)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the folder of the online store '{self.path}': {exc.strerror}.",
                hint="Choose a writable location with PLINTH_ONLINE_URL or PLINTH_HOME.",
            ) from exc
        with self._guard("open"), self._transaction() as connection:
            for statement in _META:
                connection.execute(statement)

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
            cached_statements=256,
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Takes effect only when this call creates the file. Rows of 25 encoded features
            # are too wide for 4 KiB pages of a WITHOUT ROWID table; 16 KiB pages made the
            # first materialization about 12% faster and halved its checkpoint (measured).
            connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(
                    f"The online store '{self.path}' cannot use write-ahead logging "
                    f"(journal mode stays '{mode}').",
                    hint="Put the online store on a local file system.",
                )
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            # Checkpoints run on the background thread, not inside the committing call.
            connection.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            connection.close()
            raise
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if self._closed:
            raise StorageError(
                f"The online store '{self.path}' is closed.",
                hint="Open it again with open_online_store().",
            )
        connection = self._connect()
        with self._lock:
            self._connections.append(connection)
        self._local.connection = connection
        return connection

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(
                f"Cannot {action} the online store '{self.path}': {exc}.",
                hint="Check that the file is a Plinth online store, is writable, and that no "
                "other process holds a long write lock on it.",
            ) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- schemas ---------------------------------------------------------------------------

    def _schema_id(self, connection: sqlite3.Connection, schema: ValueSchema) -> int:
        known = self._schema_ids.get(schema.digest)
        if known is not None:
            return known
        connection.execute(
            "INSERT OR IGNORE INTO plinth_online_schemas (digest, fields) VALUES (?, ?)",
            (schema.digest, schema.text),
        )
        (found,) = connection.execute(
            "SELECT id FROM plinth_online_schemas WHERE digest = ?", (schema.digest,)
        ).fetchone()
        return int(found)  # remembered once the transaction commits

    def _schema(self, connection: sqlite3.Connection, schema_id: int) -> ValueSchema:
        schema = self._schemas.get(schema_id)
        if schema is None:
            row = connection.execute(
                "SELECT fields FROM plinth_online_schemas WHERE id = ?", (schema_id,)
            ).fetchone()
            if row is None:
                raise StorageError(
                    f"The online store '{self.path}' has rows of an unknown value schema "
                    f"({schema_id}).",
                    hint="The file is damaged; materialize the views again into a new file.",
                )
            schema = ValueSchema.from_text(row[0])
            self._schemas[schema_id] = schema
        return schema

    def _register(self, connection: sqlite3.Connection, view: str, keys: Sequence[str]) -> None:
        import json

        text = json.dumps(list(keys))
        row = connection.execute(
            "SELECT keys FROM plinth_online_views WHERE name = ?", (view,)
        ).fetchone()
        if row is None:
            connection.execute(
                "INSERT INTO plinth_online_views (name, keys, created_at) VALUES (?, ?, ?)",
                (view, text, utcnow().isoformat()),
            )
        elif row[0] != text:
            raise SchemaMismatchError(
                f"Feature view '{view}' is stored with keys {json.loads(row[0])}, not "
                f"{list(keys)}.",
                hint=f"Delete the view's online rows first (delete_view('{view}')), then "
                "materialize it again.",
            )
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {_table(view)} ("
            " k TEXT PRIMARY KEY, ts INTEGER NOT NULL, s INTEGER NOT NULL, v TEXT NOT NULL"
            ") WITHOUT ROWID"
        )

    # -- writes ----------------------------------------------------------------------------

    def write(self, view: str, keys: list[str], data: pa.Table, *, timestamp: str) -> int:
        table = _table(view)
        prepared = prepare_write(keys, data, timestamp)
        with contextlib.closing(iter(prepared)) as batches:
            first = next(batches, None)  # encode the first batch before taking the write lock
            with self._guard(f"write view '{view}' to"), self._transaction() as connection:
                self._register(connection, view, keys)
                schema_id = self._schema_id(connection, prepared.schema)
                before = connection.total_changes
                if first is not None:
                    _upsert(connection, table, schema_id, first)
                for batch in batches:
                    _upsert(connection, table, schema_id, batch)
                written = connection.total_changes - before
        self._schema_ids[prepared.schema.digest] = schema_id
        self._schemas[schema_id] = prepared.schema
        self._checkpoints.request()
        return written

    # -- reads -----------------------------------------------------------------------------

    def read(
        self,
        view: str,
        entities: Sequence[tuple[Any, ...]],
        features: Sequence[str],
        *,
        ttl: timedelta | None,
        now: datetime | None = None,
    ) -> list[OnlineRow]:
        table = _table(view)
        keys = [encode_entity(entity) for entity in entities]
        unique = list(dict.fromkeys(keys))
        found: dict[str, Found] = {}
        with self._guard(f"read view '{view}' from"):
            connection = self._connection()
            try:
                for start in range(0, len(unique), KEYS_PER_SELECT):
                    chunk = unique[start : start + KEYS_PER_SELECT]
                    marks = ", ".join("?" * len(chunk))
                    cursor = connection.execute(
                        f"SELECT k, ts, s, v FROM {table} WHERE k IN ({marks})", chunk
                    )
                    schemas = self._schemas
                    for key, micros, schema_id, payload in cursor:
                        schema = schemas.get(schema_id) or self._schema(connection, schema_id)
                        found[key] = (micros, schema, payload)
            except sqlite3.OperationalError as exc:
                if not _no_table(exc):
                    raise
                found = {}
        return assemble(keys, found, features, ttl=ttl, now=now)

    # -- administration --------------------------------------------------------------------

    def delete_view(self, view: str) -> None:
        table = _table(view)
        with self._guard(f"delete view '{view}' from"), self._transaction() as connection:
            connection.execute(f"DROP TABLE IF EXISTS {table}")
            connection.execute("DELETE FROM plinth_online_views WHERE name = ?", (view,))

    def views(self) -> list[str]:
        with self._guard("list the views of"):
            rows = self._connection().execute("SELECT name FROM plinth_online_views ORDER BY name")
            return [name for (name,) in rows]

    def count(self, view: str) -> int:
        table = _table(view)
        with self._guard(f"count view '{view}' in"):
            try:
                (total,) = self._connection().execute(f"SELECT count(*) FROM {table}").fetchone()
            except sqlite3.OperationalError as exc:
                if not _no_table(exc):
                    raise
                return 0
        return int(total)

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file now and truncate the log.

        Example:
            >>> # store.checkpoint()
        """
        with self._guard("checkpoint"):
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def close(self) -> None:
        self._checkpoints.stop()
        if not self._closed:
            with contextlib.suppress(StorageError):
                self.checkpoint()  # flush on shutdown: leave a self-contained file
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        self._local = threading.local()
        for connection in connections:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def __repr__(self) -> str:
        return f"SQLiteOnlineStore({str(self.path)!r})"


class _Checkpointer:
    """A daemon thread that checkpoints the store's log after writes, without blocking them.

    ``PASSIVE`` checkpoints copy what no reader still needs and never wait for a lock.
    """

    def __init__(self, store: SQLiteOnlineStore) -> None:
        self._store = store
        self._wanted = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="plinth-online-checkpoint", daemon=True
            )
            self._thread.start()
        self._wanted.set()

    def _loop(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                if connection is None:
                    connection = self._store._connect()
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            if connection is not None:
                connection.close()

    def stop(self) -> None:
        self._stopping = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def _upsert(connection: sqlite3.Connection, table: str, schema_id: int, batch: Batch) -> None:
    """Send the rows many per statement: per-statement overhead dominates single-row inserts."""
    keys, times, payloads = batch
    rows = len(keys)
    flat: list[Any] = [None] * (3 * rows)
    flat[0::3] = keys
    flat[1::3] = times
    flat[2::3] = payloads

    def statement(count: int) -> str:
        values = ", ".join([f"(?, ?, {int(schema_id)}, ?)"] * count)
        return (
            f"INSERT INTO {table} (k, ts, s, v) VALUES {values} "
            "ON CONFLICT (k) DO UPDATE SET ts = excluded.ts, s = excluded.s, v = excluded.v "
            f"WHERE excluded.ts >= {table}.ts"
        )

    # Older SQLite builds allow only 999 parameters per statement.
    per_statement = min(ROWS_PER_STATEMENT, connection.getlimit(_VARIABLE_LIMIT) // 3)
    width = 3 * per_statement
    full = rows // per_statement
    if full:
        batches = (flat[i : i + width] for i in range(0, full * width, width))
        connection.executemany(statement(per_statement), batches)
    rest = rows - full * per_statement
    if rest:
        connection.execute(statement(rest), flat[full * width :])


def sqlite_path(url: str) -> Path:
    """Return the file path of ``sqlite:///path``, ``file:///path`` or a plain path.

    Example:
        >>> str(sqlite_path("sqlite:////tmp/online.db"))
        '/tmp/online.db'
    """
    text = str(url)
    if text.startswith("sqlite:"):
        if not text.startswith("sqlite:///"):
            raise ConfigError(
                f"Online store URL '{text}' names no file.",
                hint="Use sqlite:///relative/path.db or sqlite:////absolute/path.db.",
            )
        text = text[len("sqlite:///") :]
    elif text.startswith("file://"):
        text = text[len("file://") :]
    text = text.split("?", 1)[0]
    if not text or text == ":memory:":
        raise ConfigError(
            f"Online store URL '{url}' does not name a file.",
            hint="The online store is shared between threads and processes, so it needs a "
            "file: use sqlite:///path/to/online.db.",
        )
    return Path(text)


__all__ = ["SQLiteOnlineStore", "sqlite_path"]
