"""Plain records the lake API returns: a table and one of its versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plinth.catalog.models import LakeTable, TableVersion


@dataclass(frozen=True)
class VersionInfo:
    """One committed version of a lake table, as recorded in the catalog."""

    table: str
    version: int
    operation: str
    row_count: int
    rows_added: int
    bytes: int
    num_files: int
    schema: list[dict[str, Any]]
    source: dict[str, Any]
    ingest_id: str | None
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        """The version's reference, ``table@version``."""
        return f"{self.table}@{self.version}"

    @classmethod
    def of(cls, table: LakeTable, row: TableVersion) -> VersionInfo:
        """Build from catalog rows."""
        return cls(
            table=table.name,
            version=row.version,
            operation=row.operation,
            row_count=row.row_count,
            rows_added=row.rows_added,
            bytes=row.bytes,
            num_files=row.num_files,
            schema=list(row.schema),
            source=dict(row.source),
            ingest_id=row.ingest_id,
            created_at=row.created_at,
            created_by=row.created_by,
        )


@dataclass(frozen=True)
class TableInfo:
    """A lake table with its latest version."""

    name: str
    location: str
    key_columns: list[str] | None
    timestamp_column: str | None
    created_at: datetime
    created_by: str
    version_count: int
    latest: VersionInfo | None
