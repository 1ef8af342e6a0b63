"""The lake: named Delta tables whose every version is recorded in the catalog."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from plinth._core.clock import as_utc, utcnow
from plinth._core.ids import new_id
from plinth._core.urls import redact_text
from plinth.catalog import audit
from plinth.catalog.lineage import Node, add_edge
from plinth.catalog.models import Ingest, LakeTable, TableVersion
from plinth.errors import (
    ConfigError,
    ConflictError,
    PlinthError,
    SchemaMismatchError,
    StorageError,
    TableNotFoundError,
    VersionNotFoundError,
)
from plinth.lake.reconcile import process_host
from plinth.lake.records import TableInfo, VersionInfo

if TYPE_CHECKING:
    from plinth.catalog import Catalog
    from plinth.governance.crypto import Cipher
    from plinth.lake.encryption import LakeCrypto
    from plinth.lake.hooks import GateFactory, IngestGate, VersionListener
    from plinth.lake.reconcile import ReconcileResult
    from plinth.storage import Storage

MODES = ("append", "overwrite", "upsert")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: The source descriptor fields an audit event keeps (file lists are counted, not copied).
_SUMMARY_KEYS = ("kind", "format", "type", "pattern", "url", "predicate", "sha256", "rows")


def check_table_name(name: str) -> str:
    """Return ``name`` if it is a valid table name (a SQL identifier), else raise ConfigError.

    Example:
        >>> check_table_name("flights")
        'flights'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"'{name}' is not a valid table name.",
            hint="Use letters, digits and underscores, starting with a letter or underscore.",
        )
    return name


class _Capture:
    """Wraps a batch iterator so an error raised while Delta consumes it is re-raised intact."""

    def __init__(
        self,
        batches: Iterator[pa.RecordBatch],
        convert: Callable[[Any], Any],
        progress: Callable[[int], None] | None,
        finishers: list[Callable[[], None]] | None = None,
    ) -> None:
        self.batches = batches
        self.convert = convert
        self.progress = progress
        self.finishers = finishers or []
        self.error: BaseException | None = None
        self.rows = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self.batches:
                out = self.convert(batch)
                self.rows += out.num_rows
                if self.progress is not None:
                    self.progress(self.rows)
                yield out
            for finish in self.finishers:
                finish()
        except BaseException as exc:
            self.error = exc
            raise


class Lake:
    """Versioned tables on Delta Lake, recorded in the catalog.

    Example:
        >>> import plinth, pyarrow as pa, tempfile
        >>> ws = plinth.Workspace(tempfile.mkdtemp())
        >>> ws.lake.ingest(pa.table({"a": [1, 2]}), table="t").row_count
        2
        >>> ws.lake.read("t", version=0).num_rows
        2
    """

    def __init__(
        self, catalog: Catalog, storage: Storage, user: str, cipher: Cipher | None = None
    ) -> None:
        self.catalog = catalog
        self.storage = storage
        self.user = user
        #: Encryption of tables written with ``encrypt=True`` (None without a workspace key).
        self.crypto: LakeCrypto | None = None
        if cipher is not None:
            from plinth.lake.encryption import LakeCrypto

            self.crypto = LakeCrypto(cipher)
        self.options = storage.storage_options()
        self.gate_factories: list[GateFactory] = []
        self.version_listeners: list[VersionListener] = []

    # -- locations -------------------------------------------------------------------------

    def table_key(self, name: str) -> str:
        """Return the storage key of a table's Delta folder."""
        return f"lake/{check_table_name(name)}"

    def table_uri(self, name: str) -> str:
        """Return the storage URI of a table's Delta folder."""
        return self.storage.uri(self.table_key(name))

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self,
        source: Any,
        *,
        table: str,
        mode: str = "append",
        key: Sequence[str] | str | None = None,
        timestamp: str | None = None,
        evolve: bool = False,
        sql_url: str | None = None,
        format: str | None = None,
        types: Mapping[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
        checks: bool = True,
        encrypt: bool = False,
    ) -> VersionInfo:
        """Ingest ``source`` into ``table`` as one Delta commit and one catalog version.

        ``source`` is a file path or glob (CSV, Parquet, JSON; ``.gz``/``.zip``), a SQL query
        (with ``sql_url``), or a pandas/polars DataFrame or Arrow table/stream. ``mode`` is
        ``append``, ``overwrite`` or ``upsert`` (by ``key``). The table's schema is enforced;
        ``evolve=True`` adds new columns. Large inputs stream in record batches; ``progress`` is
        called with the running row count after each batch. ``checks=False`` skips the gates
        (the table's data contract) for this ingest. ``encrypt=True`` writes the new files
        encrypted under the workspace key when one is configured (appends and overwrites; see
        :mod:`plinth.lake.encryption`).

        Example:
            >>> # ws.lake.ingest("flights.csv.zip", table="flights", timestamp="time_hour")
        """
        from plinth.lake.sources import resolve_source

        check_table_name(table)
        if mode not in MODES:
            raise ConfigError(f"Unknown ingest mode '{mode}'.", hint=f"Use one of: {MODES}.")
        keys = [key] if isinstance(key, str) else list(key or [])
        src = resolve_source(source, sql_url=sql_url, fmt=format)
        ingest_id = new_id("ing_")
        self._start_ingest(ingest_id, table, mode, src.descriptor)
        gates: list[IngestGate] = []
        factories = self.gate_factories if checks else []
        try:
            version, rows_added, stored, written = self._write(
                src,
                ingest_id,
                table,
                mode,
                keys,
                timestamp,
                evolve,
                types,
                progress,
                gates,
                factories,
                encrypt=encrypt,
            )
            descriptor = src.finish()
            info = self.record_version(
                ingest_id=ingest_id,
                table_name=table,
                version=version,
                table=written,
                operation=mode,
                rows_added=rows_added,
                source=descriptor,
                created_by=self.user,
                key_columns=keys or stored.get("keys"),
                timestamp_column=timestamp,
            )
        except BaseException as exc:
            self._fail_ingest(ingest_id, exc)
            for gate in gates:
                gate.abort(exc)
            raise
        for gate in gates:
            gate.committed(info)
        return info

    def _start_ingest(self, ingest_id: str, table: str, mode: str, source: dict[str, Any]) -> None:
        with self.catalog.session() as session:
            session.add(
                Ingest(
                    id=ingest_id,
                    table_name=table,
                    mode=mode,
                    status="pending",
                    source=source,
                    host=process_host(),
                    pid=os.getpid(),
                    started_at=utcnow(),
                    created_by=self.user,
                )
            )

    def _fail_ingest(self, ingest_id: str, exc: BaseException) -> None:
        try:
            with self.catalog.session() as session:
                row = session.get(Ingest, ingest_id)
                if row is not None and row.status == "pending":
                    row.status = "failed"
                    row.finished_at = utcnow()
                    row.error = redact_text(f"{type(exc).__name__}: {exc}")[:4000]
        except Exception:
            pass

    def _stored_table(self, table: str) -> dict[str, Any]:
        with self.catalog.session() as session:
            row = session.scalar(select(LakeTable).where(LakeTable.name == table))
            if row is None:
                return {}
            return {"keys": row.key_columns, "timestamp": row.timestamp_column}

    def _write(
        self,
        src: Any,
        ingest_id: str,
        table: str,
        mode: str,
        keys: list[str],
        timestamp: str | None,
        evolve: bool,
        types: Mapping[str, str] | None,
        progress: Callable[[int], None] | None,
        gates: list[IngestGate],
        factories: list[GateFactory],
        *,
        encrypt: bool = False,
    ) -> tuple[int, int, dict[str, Any], Any]:
        """Write ``src`` (retrying conflicts when it can be read again); return the version,
        the rows added, the table's stored options and the Delta table written through."""
        from plinth.lake import delta

        uri = self.table_uri(table)
        stored = self._stored_table(table)
        if mode == "upsert" and not (keys or stored.get("keys")):
            raise ConfigError(
                f"Upsert into '{table}' needs key columns.",
                hint="Pass --key COL[,COL...] (key=[...]).",
            )
        attempts = 5 if src.reiterable else 1
        table_keys = keys or stored.get("keys") or []
        for attempt in range(attempts):
            existed = self._exists(uri)
            gates.clear()
            try:
                rows, written = self._write_once(
                    src,
                    ingest_id,
                    table,
                    uri,
                    mode,
                    table_keys,
                    timestamp,
                    evolve,
                    types,
                    existed,
                    progress,
                    gates,
                    factories,
                    encrypt=encrypt,
                )
                break
            except PlinthError:
                raise
            except delta.WRITE_ERRORS as exc:
                for gate in gates:
                    gate.abort(exc)
                # Delta retries plain appends itself; what reaches here is a real conflict, such
                # as two writers creating the table at once. The source is read again and the
                # write retried against the table as it is now.
                if delta.is_conflict(exc) and attempt + 1 < attempts:
                    continue
                if delta.is_conflict(exc):
                    raise ConflictError(
                        f"Ingest into '{table}' conflicted with a concurrent change: {exc}.",
                        hint="Run the ingest again.",
                    ) from exc
                raise StorageError(
                    f"Writing table '{table}' at '{uri}' failed: {exc}.",
                    hint="Check the storage location is writable (PLINTH_STORAGE_URL).",
                ) from exc
        commit = delta.find_commit(self.storage, self.table_key(table), ingest_id)
        if commit is None:
            raise ConflictError(
                f"The commit of ingest {ingest_id} is missing from table '{table}'.",
                hint="Another process may have overwritten the table's log; check its history.",
            )
        return int(commit["version"]), rows, stored, written

    def _exists(self, uri: str) -> bool:
        from plinth.lake import delta

        try:
            return delta.table_exists(uri, self.options)
        except Exception as exc:
            raise StorageError(
                f"Cannot reach the lake storage at '{uri}': {exc}.",
                hint="Check PLINTH_STORAGE_URL, the endpoint and the credentials.",
            ) from exc

    def _write_once(
        self,
        src: Any,
        ingest_id: str,
        table: str,
        uri: str,
        mode: str,
        keys: list[str],
        timestamp: str | None,
        evolve: bool,
        types: Mapping[str, str] | None,
        existed: bool,
        progress: Callable[[int], None] | None,
        gates: list[IngestGate],
        factories: list[GateFactory],
        *,
        encrypt: bool = False,
    ) -> tuple[int, Any]:
        from deltalake import write_deltalake

        from plinth.lake import delta
        from plinth.lake.hooks import IngestContext
        from plinth.lake.schema import column_types, conform_batch, plan_schema

        current = None
        current_version = None
        existing_table = None
        if existed:
            existing_table = delta.open_table(uri, self.options)
            current = pa.schema(existing_table.schema().to_arrow())
            current_version = existing_table.version()
        parse_types = column_types(current, types)
        incoming, batches = src.open(parse_types)
        if types:
            incoming = pa.schema(
                [pa.field(f.name, parse_types.get(f.name, f.type)) for f in incoming]
            )
        target = plan_schema(current, incoming, evolve=evolve, table_name=table)
        _check_columns(table, target, keys, timestamp)
        context = IngestContext(
            self, table, ingest_id, mode, target, current_version, keys, timestamp
        )
        for factory in factories:
            gate = factory(context)
            if gate is not None:
                gates.append(gate)

        def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
            batch = conform_batch(batch, target)
            for gate in gates:
                batch = gate.process(batch)
            return batch

        capture = _Capture(batches, convert, progress, [g.finish for g in gates])
        reader = pa.RecordBatchReader.from_batches(target, iter(capture))
        options = {"key": keys, "timestamp": timestamp}
        if encrypt and self.crypto is not None:
            if mode == "upsert":
                raise ConfigError(
                    f"Table '{table}' is written encrypted, and encrypted tables take appends "
                    "and overwrites only.",
                    hint="Ingest with mode 'append' or 'overwrite'.",
                )
            rows = self._write_encrypted(
                capture, target, ingest_id, src.descriptor, options, uri, mode, existed, current
            )
            return rows, None
        props = delta.commit_properties(ingest_id, src.descriptor, options)
        try:
            if mode == "upsert":
                data = _checked_upsert_input(reader, keys)
                if existed:
                    self._merge(uri, data, keys, props, evolve)
                else:
                    write_deltalake(
                        uri,
                        data,
                        mode="append",
                        storage_options=self.options or None,
                        commit_properties=props,
                    )
            else:
                schema_mode = None
                if evolve and current is not None:
                    schema_mode = "overwrite" if mode == "overwrite" else "merge"
                # Through the table opened above when there is one: it then holds the
                # new version, and recording it needs no third read of the Delta log.
                write_deltalake(
                    existing_table if existing_table is not None else uri,
                    reader,
                    mode="overwrite" if mode == "overwrite" else "append",
                    schema_mode=schema_mode,
                    storage_options=self.options or None,
                    commit_properties=props,
                )
                return capture.rows, existing_table
        except BaseException:
            if capture.error is not None:
                raise capture.error from None
            raise
        return capture.rows, None

    def _write_encrypted(
        self,
        capture: _Capture,
        target: pa.Schema,
        ingest_id: str,
        descriptor: dict[str, Any],
        options: dict[str, Any],
        uri: str,
        mode: str,
        existed: bool,
        current: pa.Schema | None,
    ) -> int:
        from plinth.lake import delta, encryption

        assert self.crypto is not None
        filesystem = self.storage.arrow_filesystem()
        try:
            actions = encryption.write_files(capture, target, uri, filesystem, self.crypto)
        except BaseException:
            if capture.error is not None:
                raise capture.error from None
            raise
        props = delta.commit_properties(ingest_id, descriptor, options, rows=capture.rows)
        encryption.commit(
            uri,
            self.options,
            actions,
            target,
            existed=existed,
            mode="overwrite" if mode == "overwrite" else "append",
            current=current,
            props=props,
        )
        return capture.rows

    def _merge(self, uri: str, data: pa.Table, keys: list[str], props: Any, evolve: bool) -> None:
        from plinth.lake import delta

        predicate = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
        target = delta.open_table(uri, self.options)
        (
            target.merge(
                data,
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=evolve,
                commit_properties=props,
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )

    def record_version(
        self,
        *,
        ingest_id: str,
        table_name: str,
        version: int,
        operation: str,
        rows_added: int,
        source: dict[str, Any],
        created_by: str,
        key_columns: list[str] | None,
        timestamp_column: str | None,
        table: Any = None,
    ) -> VersionInfo:
        """Record a committed Delta version in the catalog, with lineage, in one transaction.

        ``table`` is the Delta table the write went through, used for the version's
        statistics when it is loaded at ``version`` (else the version is read again).
        """
        from plinth.lake import delta
        from plinth.lake.schema import schema_to_json
        from plinth.lake.sources import lineage_nodes

        uri = self.table_uri(table_name)
        if table is None or table.version() != version:
            table = delta.open_table(uri, self.options, version)
        stats = delta.version_stats(table)
        for attempt in range(2):
            try:
                with self.catalog.session() as session:
                    row = session.scalar(select(LakeTable).where(LakeTable.name == table_name))
                    if row is None:
                        row = LakeTable(
                            name=table_name,
                            location=uri,
                            key_columns=key_columns or None,
                            timestamp_column=timestamp_column,
                            created_at=utcnow(),
                            created_by=created_by,
                        )
                        session.add(row)
                        session.flush()
                    else:
                        if key_columns:
                            row.key_columns = list(key_columns)
                        if timestamp_column:
                            row.timestamp_column = timestamp_column
                    existing = session.scalar(
                        select(TableVersion).where(
                            TableVersion.table_id == row.id, TableVersion.version == version
                        )
                    )
                    created = existing is None
                    if existing is None:
                        existing = TableVersion(
                            table_id=row.id,
                            version=version,
                            operation=operation,
                            row_count=stats.row_count,
                            rows_added=rows_added,
                            bytes=stats.bytes,
                            num_files=stats.num_files,
                            schema=schema_to_json(stats.schema),
                            source=source,
                            ingest_id=ingest_id,
                            created_at=utcnow(),
                            created_by=created_by,
                        )
                        session.add(existing)
                    target = Node("table_version", f"{table_name}@{version}")
                    for node, details in lineage_nodes(source):
                        add_edge(session, node, target, "ingested_into", details)
                    ingest = session.get(Ingest, ingest_id)
                    if ingest is not None:
                        ingest.status = "committed"
                        ingest.version = version
                        ingest.source = source
                        ingest.finished_at = utcnow()
                    if created:
                        # Last, so the transaction holds the chain's lock only briefly.
                        audit.record(
                            session,
                            actor=created_by,
                            action="table.version",
                            resource=f"table:{table_name}@{version}",
                            details={
                                "operation": operation,
                                "rows": rows_added,
                                "ingest_id": ingest_id,
                                "source": source_summary(source),
                            },
                        )
                    session.flush()
                    info = VersionInfo.of(row, existing)
                break
            except SqlIntegrityError:
                # A concurrent first ingest created the table row; read it and go again.
                if attempt:
                    raise
        for listener in self.version_listeners:
            listener(info)
        return info

    # -- queries ---------------------------------------------------------------------------

    def _table_row(self, session: Any, name: str) -> LakeTable:
        row = session.scalar(select(LakeTable).where(LakeTable.name == name))
        if row is None:
            raise TableNotFoundError(
                f"Table '{name}' does not exist.",
                hint="Run 'plinth tables' to list tables, or ingest data into it first.",
            )
        return row

    def tables(self) -> list[TableInfo]:
        """Return every lake table with its latest version, by name.

        Example:
            >>> # [t.name for t in ws.lake.tables()]
        """
        with self.catalog.session() as session:
            latest = (
                select(
                    TableVersion.table_id,
                    func.max(TableVersion.version).label("v"),
                    func.count(TableVersion.id).label("n"),
                )
                .group_by(TableVersion.table_id)
                .subquery()
            )
            rows = session.execute(
                select(LakeTable, TableVersion, latest.c.n)
                .join(latest, latest.c.table_id == LakeTable.id)
                .join(
                    TableVersion,
                    (TableVersion.table_id == LakeTable.id) & (TableVersion.version == latest.c.v),
                )
                .order_by(LakeTable.name)
            ).all()
            return [_table_info(t, v, n) for t, v, n in rows]

    def table(self, name: str) -> TableInfo:
        """Return one table with its latest version; raise TableNotFoundError if unknown."""
        with self.catalog.session() as session:
            row = self._table_row(session, name)
            versions = row.versions
            return _table_info(row, versions[-1] if versions else None, len(versions))

    def history(self, name: str) -> list[VersionInfo]:
        """Return every recorded version of a table, oldest first."""
        with self.catalog.session() as session:
            row = self._table_row(session, name)
            return [VersionInfo.of(row, v) for v in row.versions]

    def version(
        self, name: str, version: int | None = None, as_of: datetime | None = None
    ) -> VersionInfo:
        """Return a table's version by number, as of a time, or the latest."""
        with self.catalog.session() as session:
            row = self._table_row(session, name)
            query = select(TableVersion).where(TableVersion.table_id == row.id)
            if version is not None:
                query = query.where(TableVersion.version == version)
            elif as_of is not None:
                query = query.where(TableVersion.created_at <= as_of_utc(as_of))
            found = session.scalar(query.order_by(TableVersion.version.desc()).limit(1))
            if found is None:
                if version is not None:
                    what = f"version {version}"
                elif as_of is not None:
                    what = f"version as of {as_of_utc(as_of).isoformat()}"
                else:
                    what = "version yet"
                raise VersionNotFoundError(
                    f"Table '{name}' has no {what}.",
                    hint=f"Run 'plinth table history {name}' to list its versions.",
                )
            return VersionInfo.of(row, found)

    def delta_table(
        self, name: str, version: int | None = None, as_of: datetime | None = None
    ) -> Any:
        """Return the ``deltalake.DeltaTable`` of a table at a recorded version."""
        from plinth.lake import delta

        info = self.version(name, version, as_of)
        try:
            return delta.open_table(self.table_uri(name), self.options, info.version)
        except Exception as exc:
            raise VersionNotFoundError(
                f"Version {info.version} of table '{name}' cannot be loaded from the lake: {exc}.",
                hint="The Delta log may have been vacuumed or the storage moved.",
            ) from exc

    def scan(self, name: str, version: int | None = None, as_of: datetime | None = None) -> Any:
        """Return a ``pyarrow.dataset.Dataset`` over a table version, for out-of-core reads.

        Example:
            >>> # ws.lake.scan("flights").to_batches(columns=["dep_delay"])
        """
        return self.dataset(name, self.delta_table(name, version, as_of))

    def added_since(self, name: str, version: int | None) -> tuple[Any, int, bool]:
        """The rows added to a table after ``version``: ``(dataset, latest version, complete)``.

        For append-only tables (prediction logs) this reads only the new data files. When a
        file of ``version`` is gone (a delete or compaction rewrote the table) ``complete`` is
        True and the dataset holds the whole latest version, so the caller recounts from it.

        Example:
            >>> # dataset, latest, complete = ws.lake.added_since("predictions__delay", 12)
        """
        latest = self.delta_table(name)
        if version is None:
            return self.dataset(name, latest), latest.version(), True
        if version >= latest.version():
            return self.dataset(name, latest, []), latest.version(), False
        before = set(self.delta_table(name, version).file_uris())
        now = latest.file_uris()
        if not before.issubset(now):
            return self.dataset(name, latest), latest.version(), True
        added = [u for u in now if u not in before]
        return self.dataset(name, latest, added), latest.version(), False

    def dataset(self, name: str, table: Any, uris: list[str] | None = None) -> Any:
        """An Arrow dataset over a loaded ``DeltaTable``'s files (or ``uris`` of them).

        Encrypted files are decrypted with the workspace key; a missing or different key is a
        :class:`ConfigError` naming the key the table needs.

        Example:
            >>> # ws.lake.dataset("flights", ws.lake.delta_table("flights"))
        """
        from plinth.lake import delta
        from plinth.lake.encryption import check_readable

        files = table.file_uris() if uris is None else uris
        check_readable(name, files, self.crypto)
        fmt = self.crypto.scan_format() if self.crypto is not None else None
        return delta.arrow_dataset(table, self.storage.arrow_filesystem(), files, fmt=fmt)

    def read(
        self,
        name: str,
        version: int | None = None,
        as_of: datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Read a table version (latest by default) into an Arrow table.

        Example:
            >>> # ws.lake.read("flights", version=0, columns=["dep_delay"]).num_rows
        """
        dataset = self.scan(name, version, as_of)
        if columns:
            missing = [c for c in columns if c not in dataset.schema.names]
            if missing:
                raise SchemaMismatchError(
                    f"Table '{name}' has no column(s) {', '.join(missing)}.",
                    hint=f"Its columns are: {', '.join(dataset.schema.names)}.",
                )
        return dataset.to_table(columns=list(columns) if columns else None)

    def delete(self, name: str, predicate: str | None = None) -> VersionInfo:
        """Delete the rows matching a SQL ``predicate`` (all rows if ``None``) as a new version.

        Earlier versions keep the rows (time travel); the delete is recorded like an ingest.

        Example:
            >>> # ws.lake.delete("flights__quarantine", "_plinth_ingest_id = 'ing_01...'")
        """
        from plinth.lake import delta
        from plinth.lake.encryption import file_key_id

        current = self.version(name)
        ingest_id = new_id("del_")
        descriptor = {"kind": "delete", "predicate": predicate}
        self._start_ingest(ingest_id, name, "delete", descriptor)
        try:
            table = delta.open_table(self.table_uri(name), self.options)
            props = delta.commit_properties(ingest_id, descriptor, {})
            try:
                if any(map(file_key_id, table.file_uris())):
                    self._delete_encrypted(name, table, predicate, ingest_id, descriptor)
                else:
                    table.delete(predicate, commit_properties=props)
            except delta.WRITE_ERRORS as exc:
                raise StorageError(
                    f"Deleting rows of table '{name}' failed: {exc}.",
                    hint="Check the predicate is valid SQL over the table's columns.",
                ) from exc
            commit = delta.find_commit(self.storage, self.table_key(name), ingest_id)
            if commit is None:
                # Nothing matched: Delta writes no commit, and there is no new version.
                self._fail_ingest(ingest_id, RuntimeError("no rows matched"))
                return current
            return self.record_version(
                ingest_id=ingest_id,
                table_name=name,
                version=int(commit["version"]),
                operation="delete",
                rows_added=0,
                source=descriptor,
                created_by=self.user,
                key_columns=None,
                timestamp_column=None,
            )
        except BaseException as exc:
            self._fail_ingest(ingest_id, exc)
            raise

    def _delete_encrypted(
        self,
        name: str,
        table: Any,
        predicate: str | None,
        ingest_id: str,
        descriptor: dict[str, Any],
    ) -> None:
        """Delete from a table with encrypted files by rewriting the rows that stay.

        Delta's engine cannot open the files, so the version is read (decrypted) here, the
        rows not matching ``predicate`` are written as new encrypted files, and one overwrite
        commit replaces the old files. Nothing matched: no commit, as with Delta's delete.
        """
        import duckdb

        from plinth.lake import delta, encryption

        data = self.dataset(name, table).to_table()
        if predicate is None:
            kept = data.schema.empty_table()
        else:
            connection = duckdb.connect()
            try:
                connection.register("t", data)
                query = f"SELECT * FROM t WHERE NOT coalesce(({predicate}), false)"
                kept = connection.sql(query).to_arrow_table()
            except duckdb.Error as exc:
                raise ConfigError(
                    f"Cannot delete from table '{name}' where {predicate}: {exc}.",
                    hint="Write the predicate as SQL over the table's columns.",
                ) from exc
            finally:
                connection.close()
            kept = kept.cast(data.schema)
        if kept.num_rows == data.num_rows:
            return
        assert self.crypto is not None  # the dataset above needed the key
        actions = encryption.write_files(
            kept.to_batches(),
            data.schema,
            self.table_uri(name),
            self.storage.arrow_filesystem(),
            self.crypto,
        )
        props = delta.commit_properties(ingest_id, descriptor, {}, rows=0)
        encryption.commit(
            self.table_uri(name),
            self.options,
            actions,
            data.schema,
            existed=True,
            mode="overwrite",
            current=data.schema,
            props=props,
        )

    def reconcile(self) -> ReconcileResult:
        """Resolve ingests left pending by a crashed process (see :mod:`plinth.lake.reconcile`)."""
        from plinth.lake.reconcile import reconcile

        return reconcile(self)


def source_summary(source: Mapping[str, Any]) -> dict[str, Any]:
    """A short description of an ingest source for the audit log, with no credentials.

    Example:
        >>> source_summary({"kind": "sql", "url": "postgresql://u:pw@db/x", "query": "SELECT 1"})
        {'kind': 'sql', 'url': 'postgresql://u:***@db/x'}
    """
    from plinth._core.urls import redact_url

    summary = {k: source[k] for k in _SUMMARY_KEYS if source.get(k) is not None}
    if isinstance(summary.get("url"), str):
        summary["url"] = redact_url(summary["url"])
    for key, value in summary.items():
        if isinstance(value, str):
            summary[key] = redact_text(value)
    if isinstance(source.get("paths"), list):
        summary["files"] = len(source["paths"])
    return summary


def as_of_utc(value: datetime | None) -> datetime:
    """Return an ``as_of`` argument as aware UTC (naive values are taken as UTC)."""
    if value is None:
        raise ValueError("as_of is required")
    return as_utc(value)


def _checked_upsert_input(reader: pa.RecordBatchReader, keys: list[str]) -> pa.Table:
    """Read an upsert's whole input (a merge needs it) and refuse null or repeated keys."""
    import pyarrow.compute as pc

    from plinth.errors import ParseError

    data = reader.read_all()
    for key in keys:
        if data.column(key).null_count:
            raise ParseError(
                f"Key column '{key}' has {data.column(key).null_count} null value(s); "
                "upsert cannot match them.",
                hint="Drop or fill rows with a null key before the upsert.",
            )
    counts = data.group_by(keys).aggregate([([], "count_all")])
    dupes = counts.filter(pc.greater(counts.column("count_all"), 1))
    if dupes.num_rows:
        sample = dupes.slice(0, 3).select(keys).to_pylist()
        raise SchemaMismatchError(
            f"The upsert input has {dupes.num_rows} key value(s) on more than one row, "
            f"e.g. {sample}.",
            hint="Deduplicate the input on the key columns first.",
        )
    return data


def _check_columns(table: str, schema: pa.Schema, keys: list[str], timestamp: str | None) -> None:
    missing = [k for k in keys if schema.get_field_index(k) < 0]
    if missing:
        raise SchemaMismatchError(
            f"Key column(s) {', '.join(missing)} are not in the input for table '{table}'.",
            hint=f"The columns are: {', '.join(schema.names)}.",
        )
    if timestamp is None:
        return
    index = schema.get_field_index(timestamp)
    if index < 0:
        raise SchemaMismatchError(
            f"Timestamp column '{timestamp}' is not in the input for table '{table}'.",
            hint=f"The columns are: {', '.join(schema.names)}.",
        )
    dtype = schema.field(index).type
    if not (pa.types.is_timestamp(dtype) or pa.types.is_date(dtype)):
        raise SchemaMismatchError(
            f"Timestamp column '{timestamp}' of table '{table}' is {dtype}, not a timestamp.",
            hint=f"Declare its type: --type {timestamp}=timestamptz (or timestamp).",
        )


def _table_info(row: LakeTable, latest: TableVersion | None, count: int) -> TableInfo:
    return TableInfo(
        name=row.name,
        location=row.location,
        key_columns=row.key_columns,
        timestamp_column=row.timestamp_column,
        created_at=row.created_at,
        created_by=row.created_by,
        version_count=count,
        latest=VersionInfo.of(row, latest) if latest is not None else None,
    )
