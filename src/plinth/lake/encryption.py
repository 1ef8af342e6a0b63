"""Encrypted lake tables: Parquet modular encryption under the workspace key, committed to Delta.

A table written with ``encrypt=True`` (the prediction logs, when a key is configured) stores
its data files as Parquet with modular encryption (AES-GCM, footer and every column
encrypted): each file gets random data keys, wrapped with a key derived from the workspace key
and stored in the file's footer with the workspace key's id. Delta's own writer cannot write
such files, so Plinth writes them with Arrow and commits them to the table's Delta log as add
actions; the log keeps the schema, the file list and row counts, but no column statistics
(min/max would leak values).

Reads go through Arrow datasets whose Parquet format carries the decryption settings; plaintext
files (written before the key was set) read as before in the same scan.

Example:
    >>> from plinth.governance.crypto import Cipher
    >>> LakeCrypto(Cipher(bytes(32))).key_id
    '66687aadf862bd77'
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth.governance.crypto import Cipher

#: Rows per data file of an encrypted write (one row group each, like Delta's own writer).
ROWS_PER_FILE = 1_000_000
#: How the names of encrypted data files end.
SUFFIX = ".encrypted.parquet"
_PURPOSE = "lake-parquet-keys"


class LakeCrypto:
    """Encryption and decryption settings for lake files under one workspace key.

    Example:
        >>> from plinth.governance.crypto import Cipher
        >>> crypto = LakeCrypto(Cipher(bytes(32)))
        >>> type(crypto.scan_format()).__name__, crypto.scan_format() is crypto.scan_format()
        ('ParquetFileFormat', True)
    """

    def __init__(self, cipher: Cipher) -> None:
        import pyarrow.parquet.encryption as pe

        self.key_id = cipher.key_id
        client = _key_wrapper(self.key_id, cipher.derive(_PURPOSE))
        self._factory = pe.CryptoFactory(lambda config: client)
        self._connection = pe.KmsConnectionConfig()
        self._format: Any = None  # built on the first scan, then shared by every scan

    def __repr__(self) -> str:
        return f"LakeCrypto(key_id={self.key_id!r})"

    def file_properties(self) -> Any:
        """Parquet encryption properties for one new file: footer and all columns encrypted."""
        import pyarrow.parquet.encryption as pe

        config = pe.EncryptionConfiguration(
            footer_key=self.key_id,
            uniform_encryption=True,
            plaintext_footer=False,
            double_wrapping=False,
            cache_lifetime=None,
        )
        return self._factory.file_encryption_properties(self._connection, config)

    def scan_format(self) -> Any:
        """An Arrow Parquet format that decrypts encrypted files and reads plaintext ones."""
        if self._format is None:
            import pyarrow.dataset as ds
            import pyarrow.parquet.encryption as pe

            decryption = ds.ParquetDecryptionConfig(
                self._factory, self._connection, pe.DecryptionConfiguration(cache_lifetime=None)
            )
            options = ds.ParquetFragmentScanOptions(decryption_config=decryption)
            self._format = ds.ParquetFileFormat(default_fragment_scan_options=options)
        return self._format


def _key_wrapper(key_id: str, key: bytes) -> Any:
    """A Parquet KMS client that wraps each file's data keys with AES-GCM under ``key``.

    Parquet calls it back while writing (wrap) and reading (unwrap) a file; the master key id
    stored in the file is the workspace key's id, so a file read with another key names both.
    """
    import pyarrow.parquet.encryption as pe
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(key)

    class KeyWrapper(pe.KmsClient):
        def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
            nonce = os.urandom(12)
            sealed = aead.encrypt(nonce, key_bytes, master_key_identifier.encode())
            return base64.b64encode(nonce + sealed).decode()

        def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
            if master_key_identifier != key_id:
                raise ConfigError(
                    f"A lake file is encrypted with key {master_key_identifier}, but the "
                    f"configured key is {key_id}.",
                    hint="Set PLINTH_ENCRYPTION_KEY (or _FILE) to the key that wrote the table.",
                )
            raw = base64.b64decode(wrapped_key)
            return aead.decrypt(raw[:12], raw[12:], master_key_identifier.encode())

    return KeyWrapper()


def file_key_id(path: str) -> str | None:
    """The id of the key that encrypted a lake file, from its name (``None``: plaintext).

    Encrypted files are named ``part-<uuid>-<key id>.encrypted.parquet``, so a reader can tell
    which key it needs without opening them.

    Example:
        >>> file_key_id("lake/t/part-1b2c-66687aadf862bd77.encrypted.parquet")
        '66687aadf862bd77'
        >>> file_key_id("lake/t/part-00000-1b2c-c000.snappy.parquet") is None
        True
    """
    if not path.endswith(SUFFIX):
        return None
    return path[: -len(SUFFIX)].rsplit("-", 1)[-1]


def check_readable(table: str, paths: Iterable[str], crypto: LakeCrypto | None) -> None:
    """Raise a clear :class:`ConfigError` when a table's files need a key that is not set.

    Example:
        >>> check_readable("t", ["part-0.snappy.parquet"], None)
    """
    for path in paths:
        wanted = file_key_id(path)
        if wanted is None:
            continue
        if crypto is None:
            raise ConfigError(
                f"Table '{table}' holds files encrypted with key {wanted}, and no encryption "
                "key is configured.",
                hint="Set PLINTH_ENCRYPTION_KEY or PLINTH_ENCRYPTION_KEY_FILE to that key.",
            )
        if wanted != crypto.key_id:
            raise ConfigError(
                f"Table '{table}' holds files encrypted with key {wanted}, but the configured "
                f"key is {crypto.key_id}.",
                hint="Set PLINTH_ENCRYPTION_KEY (or _FILE) to the key that wrote the table.",
            )


def write_files(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    table_uri: str,
    filesystem: Any,
    crypto: LakeCrypto,
    rows_per_file: int = ROWS_PER_FILE,
) -> list[Any]:
    """Write ``batches`` as encrypted Parquet files in the table's folder; return add actions.

    Example:
        >>> # actions = write_files(reader, reader.schema, uri, None, crypto)
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    fs = filesystem if filesystem is not None else pafs.LocalFileSystem()
    folder = (
        table_uri.split("://", 1)[1] if filesystem is not None and "://" in table_uri else table_uri
    )
    fs.create_dir(folder, recursive=True)
    actions: list[Any] = []
    writer: Any = None
    name = ""
    rows = 0

    def close() -> None:
        nonlocal writer
        if writer is None:
            return
        writer.close()
        writer = None
        size = fs.get_file_info(f"{folder}/{name}").size
        stats = json.dumps({"numRecords": rows})
        actions.append(AddAction(name, int(size), {}, int(time.time() * 1000), True, stats))

    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if writer is None:
                name = f"part-{uuid.uuid4()}-{crypto.key_id}{SUFFIX}"
                rows = 0
                writer = pq.ParquetWriter(
                    f"{folder}/{name}",
                    schema,
                    filesystem=fs,
                    encryption_properties=crypto.file_properties(),
                    compression="snappy",
                )
            writer.write_batch(batch)
            rows += batch.num_rows
            if rows >= rows_per_file:
                close()
        close()
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    return actions


def commit(
    uri: str,
    options: dict[str, str],
    actions: list[Any],
    schema: pa.Schema,
    *,
    existed: bool,
    mode: str,
    current: pa.Schema | None,
    props: Any,
) -> None:
    """Commit add actions to a Delta table (creating it, or evolving its schema first).

    ``mode`` is ``append`` or ``overwrite`` (the table's other files are removed from the
    version; Delta keeps them for time travel until vacuumed).

    Example:
        >>> # commit(uri, {}, actions, schema, existed=True, mode="append", current=s, props=p)
    """
    from deltalake import DeltaTable, Schema
    from deltalake.transaction import create_table_with_add_actions

    delta_schema = Schema.from_arrow(schema)
    if not existed:
        create_table_with_add_actions(
            uri,
            delta_schema,
            actions,
            mode="append",
            storage_options=options or None,
            commit_properties=props,
        )
        return
    table = DeltaTable(uri, storage_options=options or None)
    if current is not None and mode == "append":
        added = [f for f in schema if f.name not in current.names]
        if added:
            # A metadata-only commit first: Delta's transaction API keeps the table's schema.
            from deltalake import Field

            table.alter.add_columns([Field.from_arrow(f) for f in added])
            table = DeltaTable(uri, storage_options=options or None)
    table.create_write_transaction(
        actions, mode=mode, schema=delta_schema, partition_by=None, commit_properties=props
    )


__all__ = [
    "ROWS_PER_FILE",
    "SUFFIX",
    "LakeCrypto",
    "check_readable",
    "commit",
    "file_key_id",
    "write_files",
]
