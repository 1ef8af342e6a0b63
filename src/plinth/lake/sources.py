"""Ingest sources: files (CSV, Parquet, JSON; globs; .gz and .zip), SQL queries and in-memory
data (pandas, polars, Arrow), each read as a stream of Arrow record batches.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from plinth._core.urls import redact_text, redact_url
from plinth.catalog.lineage import Node
from plinth.errors import ParseError, SchemaMismatchError, SourceError
from plinth.storage.artifacts import hash_file

NULL_VALUES = ["", "NA", "N/A", "NULL", "null", "NaN", "nan", "None"]
FORMATS = ("csv", "parquet", "json")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
BATCH_ROWS = 131_072
TEXT_BLOCK_BYTES = 4 << 20

#: Opens the source's batches afresh, parsing text columns with the given explicit types.
BatchOpener = Callable[[dict[str, pa.DataType]], tuple[pa.Schema, Iterator[pa.RecordBatch]]]


@dataclass
class Source:
    """A readable ingest source: how to open its batches, and what to record about it."""

    descriptor: dict[str, Any]
    opener: BatchOpener
    reiterable: bool = True
    _hashes: Future[list[tuple[str, str, int]]] | None = None

    def open(self, types: dict[str, pa.DataType]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Open the batches; text formats parse the columns in ``types`` with those types."""
        return self.opener(types)

    def finish(self) -> dict[str, Any]:
        """Return the descriptor, completed with file content hashes once they are computed."""
        if self._hashes is not None:
            files = self._hashes.result()
            self.descriptor["files"] = [
                {"path": path, "sha256": digest, "bytes": size} for path, digest, size in files
            ]
            combined = hashlib.sha256("".join(d for _, d, _ in files).encode()).hexdigest()
            self.descriptor["sha256"] = combined
            self._hashes = None
        return self.descriptor


def _format_of(path: str, explicit: str | None) -> tuple[str, str | None]:
    """Return (format, compression) for a path: compression is ``gzip``, ``zip`` or ``None``."""
    lower = path.lower()
    compression = None
    if lower.endswith(".gz"):
        compression, lower = "gzip", lower[:-3]
    elif lower.endswith(".zip"):
        compression, lower = "zip", lower[:-4]
    if explicit:
        if explicit not in FORMATS:
            raise SourceError(
                f"Unknown source format '{explicit}'.", hint=f"Use one of: {', '.join(FORMATS)}."
            )
        return explicit, compression
    fmt = _SUFFIX_FORMATS.get(Path(lower).suffix)
    if fmt is None and compression == "zip":
        fmt = _zip_member_format(path)
    if fmt is None:
        raise SourceError(
            f"Cannot tell the format of '{path}' from its name.",
            hint="Name it .csv, .parquet or .json (optionally .gz or .zip), or pass --format.",
        )
    return fmt, compression


def _zip_member_format(path: str) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                fmt = _SUFFIX_FORMATS.get(Path(name.lower()).suffix)
                if fmt:
                    return fmt
    except (OSError, zipfile.BadZipFile):
        return None
    return None


def _parse_error(path: str, exc: Exception) -> ParseError:
    return ParseError(
        f"Cannot parse '{path}': {exc}.",
        hint="Fix or remove the offending row, or declare the column's type explicitly "
        "(--type COLUMN=TYPE).",
    )


def _csv_batches(stream: Any, path: str, types: dict[str, pa.DataType], delimiter: str) -> Any:
    import pyarrow.csv as pacsv

    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=TEXT_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                null_values=NULL_VALUES,
                strings_can_be_null=True,
                column_types=types,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _parse_error(path, exc) from exc
    return reader.schema, _guard(reader, path)


def _guard(batches: Any, path: str) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowTypeError, json.JSONDecodeError, ValueError) as exc:
        raise _parse_error(path, exc) from exc


class _Prefixed:
    """A read-only stream that yields ``prefix`` and then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: Any) -> None:
        self.prefix = prefix
        self.stream = stream
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            if size is None or size < 0:
                data, self.prefix = self.prefix + self.stream.read(), b""
                return data
            data, self.prefix = self.prefix[:size], self.prefix[size:]
            if len(data) < size:
                data += self.stream.read(size - len(data))
            return data
        return self.stream.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.stream.close()


def _json_batches(stream: Any, path: str, types: dict[str, pa.DataType]) -> Any:
    import pyarrow.json as pajson

    head = stream.read(4096)
    if head.lstrip()[:1] == b"[":
        # A JSON array has to be parsed whole; newline-delimited JSON streams.
        try:
            records = json.loads(head + stream.read())
        except json.JSONDecodeError as exc:
            raise _parse_error(path, exc) from exc
        table = pa.Table.from_pylist(records)
        return table.schema, iter(table.to_batches(BATCH_ROWS))
    explicit = pa.schema(list(types.items())) if types else None
    try:
        reader = pajson.open_json(
            _Prefixed(head, stream),
            read_options=pajson.ReadOptions(block_size=TEXT_BLOCK_BYTES),
            parse_options=pajson.ParseOptions(
                explicit_schema=explicit, unexpected_field_behavior="infer"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _parse_error(path, exc) from exc
    return reader.schema, _guard(reader, path)


def _parquet_batches(local_path: str, path: str, temporary: bool = False) -> Any:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(local_path)
    except (pa.ArrowInvalid, OSError) as exc:
        if temporary:
            os.unlink(local_path)
        raise _parse_error(path, exc) from exc

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from _guard(parquet.iter_batches(batch_size=BATCH_ROWS), path)
        finally:
            parquet.close()
            if temporary:
                os.unlink(local_path)

    return parquet.schema_arrow, batches()


def _open_file(path: str, fmt: str, compression: str | None, types: dict[str, pa.DataType]) -> Any:
    delimiter = "\t" if path.lower().removesuffix(".gz").endswith(".tsv") else ","
    if compression == "zip":
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise SourceError(
                f"The archive '{path}' holds {len(members)} files; one was expected.",
                hint="Unzip it and ingest the files with a glob.",
            )
        if fmt == "parquet":
            tmp = tempfile.NamedTemporaryFile(suffix=".parquet", delete=False)  # noqa: SIM115
            with archive.open(members[0]) as member, tmp:
                shutil.copyfileobj(member, tmp, 1 << 20)
            return _parquet_batches(tmp.name, path, temporary=True)
        stream = archive.open(members[0])
        if members[0].lower().endswith(".tsv"):
            delimiter = "\t"
    elif compression == "gzip":
        if fmt == "parquet":
            import gzip

            tmp = tempfile.NamedTemporaryFile(suffix=".parquet", delete=False)  # noqa: SIM115
            with gzip.open(path, "rb") as member, tmp:
                shutil.copyfileobj(member, tmp, 1 << 20)
            return _parquet_batches(tmp.name, path, temporary=True)
        stream = pa.input_stream(path, compression="gzip")
    else:
        if fmt == "parquet":
            return _parquet_batches(path, path)
        stream = pa.input_stream(path) if fmt == "csv" else open(path, "rb")  # noqa: SIM115
    if fmt == "csv":
        return _csv_batches(stream, path, types, delimiter)
    return _json_batches(stream, path, types)


def file_source(pattern: str, fmt: str | None = None) -> Source:
    """Return a source for a file path or glob; content hashes are computed alongside the read.

    Example:
        >>> # file_source("data/flights-*.csv.gz")
    """
    expanded = os.path.expanduser(pattern)
    paths = sorted(glob.glob(expanded, recursive=True)) if glob.has_magic(expanded) else [expanded]
    paths = [p for p in paths if not os.path.isdir(p)]
    if not paths:
        raise SourceError(
            f"No file matches '{pattern}'.",
            hint="Check the path and the glob pattern (quote it so the shell does not expand it).",
        )
    for path in paths:
        if not os.path.isfile(path):
            raise SourceError(f"The file '{path}' does not exist.", hint="Check the path.")
        if not os.access(path, os.R_OK):
            raise SourceError(f"The file '{path}' is not readable.", hint="Check its permissions.")
    kinds = {_format_of(p, fmt) for p in paths}
    formats = {k[0] for k in kinds}
    if len(formats) > 1:
        raise SourceError(
            f"'{pattern}' matches files of several formats ({', '.join(sorted(formats))}).",
            hint="Ingest each format separately.",
        )
    absolute = [str(Path(p).resolve()) for p in paths]

    def hash_all() -> list[tuple[str, str, int]]:
        return [(p, *hash_file(p)) for p in absolute]

    hashes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plinth-hash").submit(hash_all)

    def opener(types: dict[str, pa.DataType]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        first_schema, first_batches = _open_file(absolute[0], *_format_of(absolute[0], fmt), types)

        def chain() -> Iterator[pa.RecordBatch]:
            yield from first_batches
            names = set(first_schema.names)
            file_types = {f.name: f.type for f in first_schema}
            file_types.update(types)
            for path in absolute[1:]:
                schema, batches = _open_file(path, *_format_of(path, fmt), file_types)
                if set(schema.names) != names:
                    raise SchemaMismatchError(
                        f"'{path}' has columns {sorted(schema.names)} but '{absolute[0]}' has "
                        f"{sorted(names)}.",
                        hint="Ingest files with different columns separately (with --evolve).",
                    )
                yield from batches

        return first_schema, chain()

    descriptor: dict[str, Any] = {
        "kind": "files",
        "format": formats.pop(),
        "pattern": pattern,
        "paths": absolute,
    }
    return Source(descriptor=descriptor, opener=opener, _hashes=hashes)


def sql_source(query: str, url: str) -> Source:
    """Return a source that streams the rows of ``query`` run against the SQLAlchemy ``url``.

    Example:
        >>> # sql_source("SELECT * FROM trips", "postgresql://reader@db/warehouse")
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from plinth.catalog.db import normalize_url

    safe_url = redact_url(url)
    try:
        engine = create_engine(normalize_url(url))
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise SourceError(
            f"Cannot use the database URL '{safe_url}': {redact_text(str(exc))}.",
            hint="Use a SQLAlchemy URL such as postgresql://user:pass@host/db or sqlite:///f.db.",
        ) from exc

    def opener(types: dict[str, pa.DataType]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        conn = None
        try:
            conn = engine.connect()
            result = conn.execution_options(stream_results=True).execute(text(query))
            columns = list(result.keys())
            chunks = result.partitions(BATCH_ROWS // 2)
            first = next(chunks, [])
        except SQLAlchemyError as exc:
            if conn is not None:
                conn.close()
            engine.dispose()
            raise SourceError(
                f"The query against '{safe_url}' failed: "
                f"{redact_text(str(getattr(exc, 'orig', exc)))}.",
                hint="Check the SQL and that the database is reachable.",
            ) from exc
        schema = _rows_schema(columns, first, types)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield _rows_batch(columns, first, schema)
                for chunk in chunks:
                    yield _rows_batch(columns, chunk, schema)
            except SQLAlchemyError as exc:
                raise SourceError(
                    f"Reading the query result failed: {redact_text(str(exc))}."
                ) from exc
            finally:
                conn.close()
                engine.dispose()

        return schema, batches()

    digest = hashlib.sha256(f"{safe_url}\n{query}".encode()).hexdigest()
    descriptor = {"kind": "sql", "query": redact_text(query), "url": safe_url, "sha256": digest}
    return Source(descriptor, opener)


def _rows_schema(columns: list[str], rows: list[Any], types: dict[str, pa.DataType]) -> pa.Schema:
    fields = []
    for i, name in enumerate(columns):
        if name in types:
            fields.append(pa.field(name, types[name]))
            continue
        inferred = pa.array([row[i] for row in rows]).type if rows else pa.null()
        fields.append(pa.field(name, pa.string() if pa.types.is_null(inferred) else inferred))
    return pa.schema(fields)


def _rows_batch(columns: list[str], rows: list[Any], schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for i, field in enumerate(schema):
        values = [row[i] for row in rows]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if pa.types.is_string(field.type):
                arrays.append(pa.array([None if v is None else str(v) for v in values]))
                continue
            raise ParseError(
                f"Column '{columns[i]}' of the query result does not fit {field.type}: {exc}.",
                hint="Cast the column in the query (CAST(... AS ...)).",
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def memory_source(data: Any) -> Source:
    """Return a source for in-memory data: pandas or polars DataFrames, or Arrow data.

    Example:
        >>> src = memory_source(pa.table({"a": [1, 2]}))
        >>> src.descriptor["rows"]
        2
    """
    kind = f"{type(data).__module__.split('.')[0]}.{type(data).__name__}"
    reiterable = True
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, pa.RecordBatchReader):
        table, reiterable = None, False
    elif type(data).__module__.startswith("pandas"):
        table = pa.Table.from_pandas(data, preserve_index=False)
    elif type(data).__module__.startswith("polars"):
        table = data.to_arrow()
    elif hasattr(data, "__arrow_c_stream__"):
        data = pa.RecordBatchReader.from_stream(data)
        table, reiterable = None, False
    else:
        raise SourceError(
            f"Cannot ingest an object of type {kind}.",
            hint="Pass a file path or glob, a SQL query with sql_url=, or a pandas/polars "
            "DataFrame or Arrow table.",
        )
    if table is not None:

        def opener(types: dict[str, pa.DataType]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
            return table.schema, iter(table.to_batches(BATCH_ROWS))

        descriptor = {"kind": "memory", "type": kind, "rows": table.num_rows}
    else:
        consumed = False

        def opener(types: dict[str, pa.DataType]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
            nonlocal consumed
            if consumed:
                raise SourceError("An Arrow stream can be read only once.")
            consumed = True
            return data.schema, iter(data)

        descriptor = {"kind": "memory", "type": kind}
    return Source(descriptor, opener, reiterable=reiterable)


def resolve_source(source: Any, *, sql_url: str | None = None, fmt: str | None = None) -> Source:
    """Return the :class:`Source` for what a user passed to ``ingest``.

    Example:
        >>> resolve_source(pa.table({"a": [1]})).descriptor["kind"]
        'memory'
    """
    if sql_url is not None:
        if not isinstance(source, str):
            raise SourceError("With sql_url, the source must be a SQL query string.")
        return sql_source(source, sql_url)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str):
        return file_source(source, fmt)
    return memory_source(source)


def complete_descriptor(descriptor: dict[str, Any]) -> dict[str, Any]:
    """Fill in missing file hashes of a files descriptor (for ingests recovered after a crash)."""
    if descriptor.get("kind") == "files" and "files" not in descriptor:
        files = []
        for path in descriptor.get("paths", []):
            if os.path.isfile(path):
                digest, size = hash_file(path)
                files.append({"path": path, "sha256": digest, "bytes": size})
        descriptor = {**descriptor, "files": files}
    return descriptor


def lineage_nodes(descriptor: dict[str, Any]) -> list[tuple[Node, dict[str, Any]]]:
    """Return the lineage nodes a source descriptor names, each with details for the edge.

    Example:
        >>> lineage_nodes({"kind": "sql", "sha256": "ab", "query": "q", "url": "u"})[0][0].kind
        'query'
    """
    kind = descriptor.get("kind")
    if kind == "files":
        return [
            (Node("file", f"sha256:{f['sha256']}"), {"path": f["path"], "bytes": f["bytes"]})
            for f in descriptor.get("files", [])
        ]
    if kind == "sql":
        details = {"query": descriptor["query"], "url": descriptor["url"]}
        return [(Node("query", f"sha256:{descriptor['sha256']}"), details)]
    return []
