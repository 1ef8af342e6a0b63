"""Expose lake data to DuckDB: local Parquet files through DuckDB's own reader, anything
else (S3, in-memory Arrow) through Arrow.

Reading local Delta files with ``read_parquet`` measured about three times faster than scanning
the same files through an Arrow dataset, and it parallelizes across row groups.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from plinth._core.sql import quote
from plinth.lake.encryption import file_key_id

if TYPE_CHECKING:
    import duckdb

_GLOB_CHARS = set("*?[]{}")


def local_parquet_files(data: Any) -> list[str]:
    """Return the files of a plain local Parquet dataset DuckDB can read directly, else ``[]``.

    Example:
        >>> local_parquet_files(pa.table({"a": [1]}))
        []
    """
    import pyarrow.dataset as ds

    if not (
        isinstance(data, ds.FileSystemDataset)
        and isinstance(data.format, ds.ParquetFileFormat)
        and getattr(data.filesystem, "type_name", None) == "local"
    ):
        return []
    files = list(data.files)
    if not files or any(_GLOB_CHARS & set(f) for f in files):
        return []
    if any(map(file_key_id, files)):
        return []  # DuckDB cannot unwrap the keys: Arrow decrypts them

    for fragment in data.get_fragments():
        if not fragment.partition_expression.equals(ds.scalar(True)):
            return []
    return files


def register(connection: duckdb.DuckDBPyConnection, name: str, data: Any) -> dict[str, str]:
    """Make ``data`` (Arrow table or dataset) readable as the view ``name``.

    Returns each column's SQL source in the view: the quoted column, or ``""`` for a column
    the table's schema has but no file holds yet (added by a later schema evolution); the
    view reads those as NULL of the schema's type.

    Example:
        >>> import duckdb
        >>> con = duckdb.connect()
        >>> register(con, "t", pa.table({"a": [1, 2]}))
        {'a': '"a"'}
        >>> con.sql("SELECT sum(a) FROM t").fetchone()
        (3,)
    """
    files = local_parquet_files(data)
    if not files:
        connection.register(name, data)
        return {n: quote(n) for n in data.schema.names}
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    raw = f"{name}__files"
    connection.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote(raw)} AS "
        f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"
    )
    present = {row[0] for row in connection.execute(f"DESCRIBE {quote(raw)}").fetchall()}
    columns = {n: quote(n) if n in present else "" for n in data.schema.names}
    body = ", ".join(
        columns[f.name] or f"CAST(NULL AS {duck_type(connection, f.type)}) AS {quote(f.name)}"
        for f in data.schema
    )
    connection.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT {body} FROM {quote(raw)}"
    )
    return columns


def unregister(connection: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop what :func:`register` created."""
    connection.execute(f"DROP VIEW IF EXISTS {quote(name)}")
    connection.execute(f"DROP VIEW IF EXISTS {quote(name + '__files')}")
    with contextlib.suppress(Exception):  # nothing was registered under that name
        connection.unregister(name)


def duck_type(connection: duckdb.DuckDBPyConnection, dtype: pa.DataType) -> str:
    """Return the DuckDB type name DuckDB gives an Arrow type (e.g. ``BIGINT``)."""
    connection.register("__plinth_type_probe", pa.table({"x": pa.array([], type=dtype)}))
    try:
        return str(connection.sql("SELECT x FROM __plinth_type_probe").types[0])
    finally:
        connection.unregister("__plinth_type_probe")
