"""What a model version came from, read back from the catalog: its run and training set."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plinth.catalog.models import TrainingSet
from plinth.errors import RunNotFoundError

if TYPE_CHECKING:
    from plinth.tracking.service import RunDetail
    from plinth.workspace import Workspace


@dataclass(frozen=True)
class TrainingInputs:
    """A training set's record: its rows, the table and view versions it read, its spine."""

    id: str
    row_count: int
    created_at: datetime
    features: list[str]
    tables: dict[str, int]
    views: dict[str, int]
    spine: dict[str, Any] = field(default_factory=dict)

    @property
    def spine_table(self) -> tuple[str, int] | None:
        """The lake table version the spine came from, if it came from one."""
        if "table" in self.spine and "version" in self.spine:
            return str(self.spine["table"]), int(self.spine["version"])
        return None

    def table_versions(self) -> dict[str, int]:
        """Every lake table version behind the set, the spine's first.

        Example:
            >>> t = TrainingInputs("ts_1", 3, datetime(2024, 1, 1), [], {"weather": 2}, {},
            ...                    {"table": "flights", "version": 5})
            >>> t.table_versions()
            {'flights': 5, 'weather': 2}
        """
        out: dict[str, int] = {}
        if self.spine_table is not None:
            out[self.spine_table[0]] = self.spine_table[1]
        for name, version in self.tables.items():
            out.setdefault(name, int(version))
        return out


def training_inputs(ws: Workspace, training_set_id: str | None) -> TrainingInputs | None:
    """The catalog record of a training set, or ``None`` (none given, or no longer there).

    Example:
        >>> # training_inputs(ws, "ts_01J...").table_versions()
    """
    if not training_set_id:
        return None
    with ws.catalog.session() as session:
        row = session.get(TrainingSet, training_set_id)
        if row is None:
            return None
        inputs = dict(row.inputs or {})
        return TrainingInputs(
            id=row.id,
            row_count=int(row.row_count),
            created_at=row.created_at,
            features=list(row.features or []),
            tables={str(k): int(v) for k, v in (inputs.get("tables") or {}).items()},
            views={str(k): int(v) for k, v in (inputs.get("views") or {}).items()},
            spine=dict(row.spine or {}),
        )


def run_detail(ws: Workspace, run_id: str | None) -> RunDetail | None:
    """The run that produced a version, or ``None`` (no run, or no longer in the catalog).

    Example:
        >>> # run_detail(ws, info.run_id).params
    """
    if not run_id:
        return None
    try:
        return ws.runs.get(run_id)
    except RunNotFoundError:
        return None
