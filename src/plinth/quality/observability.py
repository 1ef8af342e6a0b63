"""Data observability of a lake table: freshness, volume, schema, distribution and lineage.

Each pillar is a small function over the lake and the catalog. :func:`detect_anomalies`
compares a version with the one before it and records what it finds (a volume drop, a
schema change) as catalog events, once per kind and version; :func:`summarize` gathers all
five pillars for one version into a :class:`QualitySummary`, which the CLI prints and
:mod:`plinth.quality.report` renders as HTML.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from plinth._core.clock import as_utc, human_duration, to_utc_datetime, utcnow
from plinth.catalog.models import Event

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from plinth.lake import Lake, VersionInfo
    from plinth.quality.drift import ColumnShift

SUBJECT_KIND = "table_version"
EVENT_KINDS = ("volume_drop", "schema_change", "freshness_breach")
#: How many of a table's most recent events a summary lists.
RECENT_EVENTS = 50


@dataclass(frozen=True)
class Freshness:
    """How recent a table's newest row is, by its timestamp column, in its latest version."""

    table: str
    version: int
    column: str
    newest: datetime | None
    checked_at: datetime

    @property
    def age(self) -> timedelta | None:
        """Time from the newest row to the check, or ``None`` for a table without rows."""
        return None if self.newest is None else self.checked_at - self.newest


class VolumePoint(NamedTuple):
    """The row count of one version."""

    version: int
    row_count: int
    created_at: datetime


@dataclass(frozen=True)
class SchemaChange:
    """Columns added, removed or retyped from one version to the next.

    ``added`` holds ``{name, type, nullable}`` records, ``removed`` the same for the
    columns that went, ``changed`` ``{name, from, to}`` records of type changes.
    """

    table: str
    from_version: int
    to_version: int
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        """Return one sentence naming what changed.

        Example:
            >>> SchemaChange("t", 0, 1, added=[{"name": "b", "type": "int64"}]).describe()
            'Version 1 of t added column b (int64) since version 0.'
        """
        parts: list[str] = []
        if self.added:
            names = ", ".join(f"{c['name']} ({c['type']})" for c in self.added)
            parts.append(f"added column{'s' if len(self.added) > 1 else ''} {names}")
        if self.removed:
            names = ", ".join(c["name"] for c in self.removed)
            parts.append(f"removed column{'s' if len(self.removed) > 1 else ''} {names}")
        if self.changed:
            names = ", ".join(f"{c['name']} ({c['from']} to {c['to']})" for c in self.changed)
            parts.append(f"changed the type of {names}")
        return (
            f"Version {self.to_version} of {self.table} {'; '.join(parts)} "
            f"since version {self.from_version}."
        )


@dataclass(frozen=True)
class QualitySummary:
    """All five pillars for one version of a table, compared with a reference version."""

    table: str
    version: int
    reference_version: int | None
    freshness: Freshness | None
    volume: list[VolumePoint]
    schema_changes: list[SchemaChange]
    shifts: list[ColumnShift]
    events: list[Event]
    lineage: list[dict[str, Any]] = field(default_factory=list)
    row_count: int = 0
    created_at: datetime = field(default_factory=utcnow)
    #: Columns withheld as personal data: never compared, drawn or listed with values.
    withheld: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain data (times stay datetimes; events as their columns).

        Example:
            >>> # summarize(ws.lake, "flights").to_dict()["volume"][0]["row_count"]
        """
        fresh = self.freshness
        return {
            "table": self.table,
            "version": self.version,
            "reference_version": self.reference_version,
            "row_count": self.row_count,
            "created_at": self.created_at,
            "freshness": None if fresh is None else asdict(fresh),
            "volume": [point._asdict() for point in self.volume],
            "schema_changes": [asdict(change) for change in self.schema_changes],
            "shifts": [shift.to_dict() for shift in self.shifts],
            "events": [event_dict(event) for event in self.events],
            "lineage": [dict(edge) for edge in self.lineage],
            "withheld": list(self.withheld),
        }


def event_dict(event: Event) -> dict[str, Any]:
    """One catalog event as plain data: its id, kind, subject, severity, message, details, time.

    Example:
        >>> event_dict(Event(id=1, kind="volume_drop", subject_kind="table_version",
        ...     subject_id="t@1", severity="warn", message="m", details=None,
        ...     created_at=None))["kind"]
        'volume_drop'
    """
    return {
        "id": event.id,
        "kind": event.kind,
        "subject_kind": event.subject_kind,
        "subject_id": event.subject_id,
        "severity": event.severity,
        "message": event.message,
        "details": event.details,
        "created_at": event.created_at,
    }


# -- freshness ------------------------------------------------------------------------------


def freshness(lake: Lake, table: str, now: datetime | None = None) -> Freshness | None:
    """Return how fresh the latest version of ``table`` is, or ``None`` without a timestamp column.

    The newest value of the table's timestamp column is found with one DuckDB ``max``;
    naive timestamps and dates are taken as UTC.

    Example:
        >>> # freshness(ws.lake, "flights").age
    """
    from plinth.quality.profiles import open_source

    info = lake.table(table)
    column = info.timestamp_column
    if column is None or info.latest is None:
        return None
    version = info.latest.version
    dataset = lake.scan(table, version)
    newest: Any = None
    if column in dataset.schema.names:
        with open_source(dataset) as (con, columns):
            col = next(c for c in columns if c.name == column)
            row = con.execute(f"SELECT max({col.value}) FROM src").fetchone()
            newest = row[0] if row else None
    return Freshness(
        table=table,
        version=version,
        column=column,
        newest=to_utc_datetime(newest),
        checked_at=as_utc(now) if now is not None else utcnow(),
    )


def record_freshness_breach(
    lake: Lake, table: str, max_age: timedelta, now: datetime | None = None
) -> Event | None:
    """Record a ``freshness_breach`` event if the newest row is older than ``max_age``.

    Returns the event (the existing one if this version was already flagged), or ``None``
    when the table is fresh enough, empty or has no timestamp column.

    Example:
        >>> # record_freshness_breach(ws.lake, "flights", timedelta(days=1))
    """
    fresh = freshness(lake, table, now)
    if fresh is None or fresh.age is None or fresh.age <= max_age:
        return None
    assert fresh.newest is not None
    message = (
        f"The newest row of {table}@{fresh.version} is {human_duration(fresh.age)} old "
        f"({fresh.column} = {fresh.newest.isoformat()}), older than the allowed "
        f"{human_duration(max_age)}."
    )
    details = {
        "column": fresh.column,
        "newest": fresh.newest.isoformat(),
        "age_seconds": fresh.age.total_seconds(),
        "max_age_seconds": max_age.total_seconds(),
        "checked_at": fresh.checked_at.isoformat(),
    }
    return record_event(lake, "freshness_breach", f"{table}@{fresh.version}", message, details)


# -- volume and schema ----------------------------------------------------------------------


def volume(lake: Lake, table: str) -> list[VolumePoint]:
    """Return ``(version, row_count, created_at)`` for every version of ``table``, oldest first.

    Example:
        >>> # [p.row_count for p in volume(ws.lake, "flights")]
    """
    return [VolumePoint(v.version, v.row_count, v.created_at) for v in lake.history(table)]


def schema_changes(lake: Lake, table: str) -> list[SchemaChange]:
    """Return the schema changes between consecutive versions of ``table``, oldest first.

    Versions whose schema equals the previous one's are left out.

    Example:
        >>> # [c.describe() for c in schema_changes(ws.lake, "flights")]
    """
    history = lake.history(table)
    changes = []
    for before, after in itertools.pairwise(history):
        change = _compare(before, after)
        if change is not None:
            changes.append(change)
    return changes


def _compare(before: VersionInfo, after: VersionInfo) -> SchemaChange | None:
    old = {c["name"]: c for c in before.schema}
    new = {c["name"]: c for c in after.schema}
    added = [dict(c) for name, c in new.items() if name not in old]
    removed = [dict(c) for name, c in old.items() if name not in new]
    changed = [
        {"name": name, "from": old[name]["type"], "to": c["type"]}
        for name, c in new.items()
        if name in old and old[name]["type"] != c["type"]
    ]
    if not (added or removed or changed):
        return None
    return SchemaChange(before.table, before.version, after.version, added, removed, changed)


# -- anomalies and events -------------------------------------------------------------------


def detect_anomalies(
    lake: Lake, table: str, version: int, *, volume_drop: float = 0.5
) -> list[Event]:
    """Compare ``version`` with the previous version and record what looks wrong as events.

    A ``volume_drop`` event when the row count fell by more than the ``volume_drop``
    fraction; a ``schema_change`` event when columns were added, removed or retyped. Each is
    recorded once per kind and version, so running this again returns the same events.

    Example:
        >>> # [e.kind for e in detect_anomalies(ws.lake, "flights", 3)]
    """
    history = lake.history(table)
    index = next((i for i, v in enumerate(history) if v.version == version), None)
    if index is None:
        lake.version(table, version)  # raises VersionNotFoundError
        return []
    if index == 0:
        return []
    before, after = history[index - 1], history[index]
    subject = after.ref
    events: list[Event] = []
    if before.row_count > 0:
        drop = (before.row_count - after.row_count) / before.row_count
        if drop > volume_drop:
            message = (
                f"The row count of {table} fell by {drop:.0%} from {before.row_count:,} rows in "
                f"version {before.version} to {after.row_count:,} in version {after.version}, "
                f"more than the {volume_drop:.0%} allowed."
            )
            details = {
                "previous_version": before.version,
                "previous_rows": before.row_count,
                "rows": after.row_count,
                "drop": drop,
                "threshold": volume_drop,
            }
            events.append(record_event(lake, "volume_drop", subject, message, details))
    change = _compare(before, after)
    if change is not None:
        details = {
            "previous_version": before.version,
            "added": change.added,
            "removed": change.removed,
            "changed": change.changed,
        }
        events.append(record_event(lake, "schema_change", subject, change.describe(), details))
    return events


def record_event(
    lake: Lake,
    kind: str,
    subject_id: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    severity: str = "warn",
    subject_kind: str = SUBJECT_KIND,
) -> Event:
    """Record an event once per ``(kind, subject)``; return the new or the existing one.

    The returned catalog row is detached from its session; its attributes stay readable.

    Example:
        >>> # record_event(ws.lake, "volume_drop", "flights@3", "The row count fell by 60%.")
    """
    with lake.catalog.session() as session:
        _lock(session, kind, subject_kind, subject_id)
        existing = _find_event(session, kind, subject_kind, subject_id)
        if existing is not None:
            return existing
        row = Event(
            kind=kind,
            subject_kind=subject_kind,
            subject_id=subject_id,
            severity=severity,
            message=message,
            details=details,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row


def _lock(session: Session, kind: str, subject_kind: str, subject_id: str) -> None:
    """Serialize writers of one event on PostgreSQL (SQLite transactions already do)."""
    import zlib

    from sqlalchemy import text

    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"event:{kind}:{subject_kind}:{subject_id}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _find_event(session: Session, kind: str, subject_kind: str, subject_id: str) -> Event | None:
    from sqlalchemy import select

    return session.scalar(
        select(Event)
        .where(
            Event.kind == kind,
            Event.subject_kind == subject_kind,
            Event.subject_id == subject_id,
        )
        .order_by(Event.id)
        .limit(1)
    )


def table_events(lake: Lake, table: str, limit: int = RECENT_EVENTS) -> list[Event]:
    """Return the most recent events about any version of ``table``, newest first.

    Example:
        >>> # [e.message for e in table_events(ws.lake, "flights")]
    """
    from sqlalchemy import select

    with lake.catalog.session() as session:
        rows = session.scalars(
            select(Event)
            .where(
                Event.subject_kind == SUBJECT_KIND,
                Event.subject_id.startswith(f"{table}@", autoescape=True),
            )
            .order_by(Event.created_at.desc(), Event.id.desc())
            .limit(limit)
        ).all()
        return list(rows)


# -- lineage and summary --------------------------------------------------------------------


def upstream(lake: Lake, table: str, version: int) -> list[dict[str, Any]]:
    """Return the lineage edges leading into ``table@version`` (its sources), as records.

    Example:
        >>> # upstream(ws.lake, "flights", 0)[0]["source"]
    """
    from plinth.catalog.lineage import Node, walk

    with lake.catalog.session() as session:
        edges = walk(session, Node(SUBJECT_KIND, f"{table}@{version}"), "up", depth=5)
    return [
        {
            "source": str(e.source),
            "target": str(e.target),
            "relation": e.relation,
        }
        for e in edges
    ]


def summarize(
    lake: Lake, table: str, against: int | None = None, version: int | None = None
) -> QualitySummary:
    """Gather freshness, volume, schema changes, column shifts, events and lineage of a version.

    ``version`` defaults to the latest, ``against`` to the version before it (``None`` when
    there is only one, and then no shifts). Anomalies of ``version`` are detected and
    recorded first, so the summary's events include them.

    Example:
        >>> # s = summarize(ws.lake, "flights"); [c.column for c in s.shifts[:3]]
    """
    from plinth.quality.drift import column_shifts
    from plinth.quality.privacy import is_withheld
    from plinth.quality.profiles import profile_version

    info = lake.version(table, version)
    history = lake.history(table)
    reference = against
    if reference is None:
        earlier = [v.version for v in history if v.version < info.version]
        reference = earlier[-1] if earlier else None
    else:
        lake.version(table, reference)  # raises VersionNotFoundError
    detect_anomalies(lake, table, info.version)
    # With a single version there is nothing to compare, but its distributions are still worth
    # a look: the version is compared with itself (every PSI is 0) so the report can draw them.
    shifts = column_shifts(
        lake, table, info.version if reference is None else reference, info.version
    )
    # Columns the table's contract marks as personal data are withheld in the profiles, so
    # column_shifts leaves them out; the report only names them.
    columns = profile_version(lake, table, info.version)["columns"]
    withheld = [name for name, entry in columns.items() if is_withheld(entry)]
    return QualitySummary(
        table=table,
        version=info.version,
        reference_version=reference,
        freshness=freshness(lake, table),
        volume=[VolumePoint(v.version, v.row_count, v.created_at) for v in history],
        schema_changes=schema_changes(lake, table),
        shifts=shifts,
        events=table_events(lake, table),
        lineage=upstream(lake, table, info.version),
        row_count=info.row_count,
        withheld=withheld,
    )
