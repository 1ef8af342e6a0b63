"""Thin layer over ``deltalake``: commits tagged with the ingest id, finding a commit again,
and statistics of a version read from the Delta log (no data files scanned).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from plinth.storage import Storage

INGEST_KEY = "plinth.ingest_id"
SOURCE_KEY = "plinth.source"
OPTIONS_KEY = "plinth.options"
ROWS_KEY = "plinth.rows"
COMMIT_RETRIES = 200
_COMMIT_FILE = re.compile(r"^\d{20}\.json$")


@dataclass(frozen=True)
class VersionStats:
    """Row count, bytes and file count of one Delta version, from its add actions."""

    row_count: int
    bytes: int
    num_files: int
    schema: pa.Schema


def commit_properties(
    ingest_id: str, source: dict[str, Any], options: dict[str, Any], *, rows: int | None = None
) -> Any:
    """Return Delta commit properties tagging the commit with the ingest id, source and options.

    What the tags carry is enough to record the version again if the process dies before the
    catalog does (see :mod:`plinth.lake.reconcile`).
    """
    from deltalake import CommitProperties

    metadata = {
        INGEST_KEY: ingest_id,
        SOURCE_KEY: json.dumps(source, default=str),
        OPTIONS_KEY: json.dumps(options),
    }
    if rows is not None:
        # Commits Plinth assembles itself (encrypted files) carry no operation metrics.
        metadata[ROWS_KEY] = str(rows)
    return CommitProperties(custom_metadata=metadata, max_commit_retries=COMMIT_RETRIES)


def committed_rows(commit: dict[str, Any]) -> int:
    """Return how many rows a commit wrote from its source (appends, overwrites and merges)."""
    if commit.get(ROWS_KEY) is not None:
        return int(commit[ROWS_KEY])
    metrics = commit.get("operationMetrics") or {}
    for key in ("num_added_rows", "num_source_rows"):
        if metrics.get(key) is not None:
            return int(metrics[key])
    return 0


def commit_options(commit: dict[str, Any]) -> dict[str, Any]:
    """Return the ingest options (key, timestamp) a commit was tagged with."""
    try:
        return dict(json.loads(commit.get(OPTIONS_KEY) or "{}"))
    except (TypeError, ValueError):
        return {}


def open_table(uri: str, options: dict[str, str], version: int | None = None) -> Any:
    """Open the Delta table at ``uri`` (at ``version`` if given)."""
    from deltalake import DeltaTable

    return DeltaTable(uri, version=version, storage_options=options or None)


def table_exists(uri: str, options: dict[str, str]) -> bool:
    """Return whether a Delta table exists at ``uri``."""
    from deltalake import DeltaTable

    return bool(DeltaTable.is_deltatable(uri, storage_options=options or None))


def find_commit(storage: Storage, table_key: str, ingest_id: str) -> dict[str, Any] | None:
    """Return the commit info tagged with ``ingest_id`` (with its ``version``), newest first.

    Reads the commit files of the Delta log directly: a commit file's name is its version and
    it never changes, whereas ``DeltaTable.history`` numbers entries by position and can
    misnumber them while other writers are committing.
    """
    versions = sorted(
        (
            int(name.rsplit("/", 1)[-1][:-5])
            for name in storage.list(f"{table_key}/_delta_log")
            if _COMMIT_FILE.match(name.rsplit("/", 1)[-1])
        ),
        reverse=True,
    )
    for version in versions:
        info = read_commit_info(storage, table_key, version)
        if info is not None and info.get(INGEST_KEY) == ingest_id:
            return {**info, "version": version}
    return None


def read_commit_info(storage: Storage, table_key: str, version: int) -> dict[str, Any] | None:
    """Return the ``commitInfo`` action of one Delta commit file, or ``None``."""
    with storage.open_read(f"{table_key}/_delta_log/{version:020d}.json") as handle:
        for line in handle:
            if line.startswith(b'{"commitInfo"'):
                return json.loads(line)["commitInfo"]
    return None


def version_stats(table: Any) -> VersionStats:
    """Return the statistics of the version ``table`` is loaded at."""
    # pa.table() on the arro3 result would import pandas (a third of a second); a stream
    # read gives the same Arrow table without it.
    actions = pa.RecordBatchReader.from_stream(table.get_add_actions(flatten=False)).read_all()
    rows = actions.column("num_records").to_pylist() if actions.num_rows else []
    sizes = actions.column("size_bytes").to_pylist() if actions.num_rows else []
    return VersionStats(
        row_count=int(sum(r or 0 for r in rows)),
        bytes=int(sum(sizes)),
        num_files=actions.num_rows,
        schema=pa.schema(table.schema().to_arrow()),
    )


def _write_errors() -> tuple[type[BaseException], ...]:
    from deltalake.exceptions import DeltaError

    return (DeltaError, OSError, pa.ArrowException)


def is_conflict(exc: BaseException) -> bool:
    """Return whether a deltalake error means another writer committed first."""
    name = type(exc).__name__
    text = str(exc).lower()
    return name in {"CommitFailedError"} or "already exists" in text or "conflict" in text


def arrow_dataset(
    table: Any, filesystem: Any, uris: list[str] | None = None, *, fmt: Any = None
) -> Any:
    """Return a ``pyarrow.dataset.Dataset`` over the data files of the loaded version.

    Built from the log's file list on a native Arrow filesystem rather than through
    ``DeltaTable.to_pyarrow_dataset``, whose Rust-backed filesystem handle aborts the interpreter
    at exit (delta-rs issue 2184). Files written before a schema evolution lack the newer
    columns; the table schema fills them with nulls. ``uris`` narrows it to some of the files.
    ``fmt`` is the Parquet format to read with (one that decrypts, for encrypted tables).
    """
    import pyarrow.dataset as ds

    schema = pa.schema(table.schema().to_arrow())
    uris = table.file_uris() if uris is None else uris
    if filesystem is not None:
        uris = [u.split("://", 1)[1] if "://" in u else u for u in uris]
    if not uris:
        return ds.dataset(pa.Table.from_batches([], schema=schema))
    return ds.dataset(uris, format=fmt or "parquet", schema=schema, filesystem=filesystem)


def __getattr__(name: str) -> Any:
    # WRITE_ERRORS needs deltalake imported; resolve it on first use, not at import time.
    if name == "WRITE_ERRORS":
        return _write_errors()
    raise AttributeError(name)
