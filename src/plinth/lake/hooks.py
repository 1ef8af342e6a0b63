"""Extension points of an ingest, so later stages (quality) act on the data as it streams.

A *gate factory* is called once per write attempt with the :class:`IngestContext`; the gate it
returns sees every batch before Delta does and decides which rows are committed. Version
listeners run after each recorded version. The lake knows nothing of what they do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from plinth.lake.lake import Lake
    from plinth.lake.records import VersionInfo


@dataclass(frozen=True)
class IngestContext:
    """What a gate knows about the ingest it guards."""

    lake: Lake
    table: str
    ingest_id: str
    mode: str
    schema: pa.Schema
    existing_version: int | None
    keys: list[str]
    timestamp: str | None

    def existing_dataset(self) -> Any:
        """The table's current data as a ``pyarrow.dataset.Dataset`` (``None`` if new)."""
        if self.existing_version is None:
            return None
        from plinth.lake import delta

        table = delta.open_table(
            self.lake.table_uri(self.table), self.lake.options, self.existing_version
        )
        return self.lake.dataset(self.table, table)


class IngestGate(Protocol):
    """Sees an ingest's batches; may drop rows (keeping them elsewhere) or block the commit."""

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Return the rows of ``batch`` to commit."""

    def finish(self) -> None:
        """Called after the last batch, before the commit; raising blocks the commit."""

    def committed(self, info: VersionInfo) -> None:
        """Called once the version is recorded in the catalog."""

    def abort(self, error: BaseException) -> None:
        """Called when the ingest fails; release what the gate holds."""


GateFactory = Callable[[IngestContext], "IngestGate | None"]
VersionListener = Callable[["VersionInfo"], None]
