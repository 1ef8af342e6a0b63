"""The versioned data lake: Delta tables, ingest from files, SQL and memory, time travel."""

from __future__ import annotations

from plinth.lake.lake import MODES, Lake, check_table_name
from plinth.lake.records import TableInfo, VersionInfo

__all__ = ["MODES", "Lake", "TableInfo", "VersionInfo", "check_table_name"]
