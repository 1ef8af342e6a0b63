"""The audit log: a tamper-evident chain of every state change, kept in the catalog.

Each event holds the time, actor, action (``table.ingest``, ``model.alias`` ...), resource
(``table:flights@3``, ``model:delay``) and details, plus three SHA-256 hashes: of the details,
of the previous event, and of the event itself (over its sequence number, time, actor, action,
resource, details hash and previous hash). Editing, deleting or reordering any event breaks the
chain at that event, which :func:`verify` finds and names. Events are appended in the same
transaction as the change they record, so a rolled-back change leaves no event, and appends
are serialized (SQLite's write lock; a PostgreSQL advisory lock) so the chain never forks.
:func:`head` gives the newest hash, to anchor the chain somewhere else.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from plinth.workspace import Workspace

GENESIS = "0" * 64
_AUDIT_LOCK = zlib.crc32(b"plinth-audit-chain")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def details_hash(details: Any) -> str:
    """SHA-256 of details in canonical JSON (sorted keys, no spaces).

    Example:
        >>> details_hash({"b": 1, "a": 2}) == details_hash({"a": 2, "b": 1})
        True
    """
    return hashlib.sha256(_canonical(details).encode()).hexdigest()


def event_hash(
    seq: int, at: datetime, actor: str, action: str, resource: str, d_hash: str, prev: str
) -> str:
    """The hash of one event, covering the previous event's hash.

    Example:
        >>> len(event_hash(1, datetime(2026, 1, 1, tzinfo=UTC), "a", "x", "r", "0", GENESIS))
        64
    """
    stamp = at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    body = _canonical([seq, stamp, actor, action, resource, d_hash, prev])
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    """One audit event as read back."""

    seq: int
    at: datetime
    actor: str
    action: str
    resource: str
    details: dict[str, Any]
    details_hash: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {**self.__dict__, "at": self.at.isoformat()}


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    resource: str,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditRecord:
    """Append an event to the chain inside the caller's transaction.

    Example:
        >>> # with ws.catalog.session() as s:
        >>> #     record(s, actor="ana", action="model.alias", resource="model:delay",
        >>> #            details={"alias": "champion", "version": 3})
    """
    from sqlalchemy import select, text

    from plinth.catalog.models import AuditEvent

    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK})
    last = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq = (last[0] + 1) if last else 1
    prev = last[1] if last else GENESIS
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    body = _ready(details or {})
    d_hash = details_hash(body)
    digest = event_hash(seq, moment, actor, action, resource, d_hash, prev)
    row = AuditEvent(
        seq=seq,
        at=moment,
        actor=actor,
        action=action,
        resource=resource,
        details=body,
        details_hash=d_hash,
        prev_hash=prev,
        hash=digest,
    )
    session.add(row)
    session.flush()
    return AuditRecord(seq, moment, actor, action, resource, body, d_hash, prev, digest)


def _ready(details: dict[str, Any]) -> dict[str, Any]:
    """Details as they will read back from JSON (so the stored hash matches on verify)."""
    return json.loads(_canonical(details))


def events(
    ws: Workspace,
    *,
    resource: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    limit: int | None = 100,
    newest_first: bool = True,
) -> list[AuditRecord]:
    """Audit events, newest first, optionally for one resource (a prefix matches, e.g.
    ``table:flights`` matches every version), action or actor.

    Example:
        >>> # [e.action for e in events(ws, resource="model:delay")]
    """
    from sqlalchemy import select

    from plinth.catalog.models import AuditEvent

    query = select(AuditEvent)
    if resource:
        query = query.where(
            (AuditEvent.resource == resource)
            | AuditEvent.resource.startswith(resource + "@")
            | AuditEvent.resource.startswith(resource + ":")
        )
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    order = AuditEvent.seq.desc() if newest_first else AuditEvent.seq
    query = query.order_by(order)
    if limit:
        query = query.limit(limit)
    with ws.catalog.session() as session:
        return [_record(row) for row in session.scalars(query)]


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        row.seq,
        row.at,
        row.actor,
        row.action,
        row.resource,
        row.details,
        row.details_hash,
        row.prev_hash,
        row.hash,
    )


@dataclass(frozen=True)
class Verification:
    """The outcome of checking the chain: how many events, and the first bad one if any."""

    ok: bool
    events: int
    head: str
    first_bad: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return dict(self.__dict__)


def _walk(ws: Workspace, batch: int = 5000) -> Iterator[Any]:
    from sqlalchemy import select

    from plinth.catalog.models import AuditEvent

    after = 0
    while True:
        with ws.catalog.session() as session:
            rows = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.seq > after)
                .order_by(AuditEvent.seq)
                .limit(batch)
            ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def verify(ws: Workspace, anchor: dict[str, Any] | None = None) -> Verification:
    """Walk the whole chain and name the first event that was edited, deleted or reordered.

    Deleting the newest events leaves a shorter chain that is still consistent; ``anchor`` (a
    :func:`head` exported earlier: ``{"seq": ..., "hash": ...}``) catches that too.

    Example:
        >>> # verify(ws).ok
    """
    anchored: str | None = None
    prev = GENESIS
    expected_seq = 1
    count = 0
    for row in _walk(ws):
        count += 1
        problem = None
        if row.seq != expected_seq:
            problem = (
                f"event {expected_seq} is missing (the chain jumps to {row.seq})"
                if row.seq > expected_seq
                else f"event {row.seq} is out of order"
            )
        elif row.prev_hash != prev:
            problem = "its previous-hash does not match the event before it (deleted or reordered)"
        elif details_hash(row.details) != row.details_hash:
            problem = "its details were edited"
        elif (
            event_hash(row.seq, row.at, row.actor, row.action, row.resource, row.details_hash, prev)
            != row.hash
        ):
            problem = "its time, actor, action, resource or hash was edited"
        if problem is not None:
            bad = row.seq if row.seq == expected_seq else expected_seq
            return Verification(False, count, prev, bad, f"event {bad}: {problem}")
        if anchor is not None and row.seq == int(anchor["seq"]):
            anchored = row.hash
        prev = row.hash
        expected_seq += 1
    if anchor is not None and int(anchor["seq"]) > 0 and anchored != anchor["hash"]:
        seq = int(anchor["seq"])
        why = "is gone" if anchored is None else "does not match the anchored hash"
        return Verification(False, count, prev, seq, f"event {seq} {why}")
    return Verification(True, count, prev)


def head(ws: Workspace) -> dict[str, Any]:
    """The newest event's sequence number, time and hash: publish it to anchor the chain.

    Example:
        >>> # head(ws)["hash"]
    """
    newest = events(ws, limit=1)
    if not newest:
        return {"seq": 0, "hash": GENESIS, "at": None}
    last = newest[0]
    return {"seq": last.seq, "hash": last.hash, "at": last.at.isoformat()}
