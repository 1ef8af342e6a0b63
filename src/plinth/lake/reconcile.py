"""Bring catalog and Delta log back into agreement after a crash mid-ingest.

An ingest is recorded as ``pending`` before anything is written and tags its Delta commit with
its id. If the process dies before it records the version, the next open finds the pending row
of a dead process, looks for the tagged commit in the Delta log, and either records the version
(the data landed) or marks the ingest ``failed`` (nothing was committed).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from plinth._core.clock import utcnow
from plinth.catalog.models import Ingest

if TYPE_CHECKING:
    from plinth.lake.lake import Lake

#: A pending ingest from another host is presumed dead after this long.
STALE_AFTER = timedelta(hours=6)


@dataclass(frozen=True)
class ReconcileResult:
    """What reconciliation did: ingest ids recorded as committed, and ids marked failed."""

    recovered: list[str]
    failed: list[str]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_host() -> str:
    """Name the host and PID namespace of this process, so a PID is only compared in its own.

    Containers may share a hostname while each has its own PID numbers.

    Example:
        >>> process_host().startswith(socket.gethostname())
        True
    """
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/pidns:{namespace}"


def _is_abandoned(row: Ingest) -> bool:
    if row.host == process_host():
        return row.pid != os.getpid() and not _process_alive(row.pid)
    return utcnow() - row.started_at > STALE_AFTER


def reconcile(lake: Lake) -> ReconcileResult:
    """Resolve every abandoned pending ingest against the Delta log.

    Example:
        >>> # reconcile(plinth.Workspace().lake)
    """
    from plinth.lake import delta
    from plinth.lake.sources import complete_descriptor

    with lake.catalog.session() as session:
        pending = list(session.scalars(select(Ingest).where(Ingest.status == "pending")))
    recovered: list[str] = []
    failed: list[str] = []
    for row in pending:
        if not _is_abandoned(row):
            continue
        uri = lake.table_uri(row.table_name)
        commit = None
        if delta.table_exists(uri, lake.options):
            commit = delta.find_commit(lake.storage, lake.table_key(row.table_name), row.id)
        if commit is not None:
            options = delta.commit_options(commit)
            lake.record_version(
                ingest_id=row.id,
                table_name=row.table_name,
                version=int(commit["version"]),
                operation=row.mode,
                rows_added=delta.committed_rows(commit),
                source=complete_descriptor(dict(row.source)),
                created_by=row.created_by,
                key_columns=options.get("key") or None,
                timestamp_column=options.get("timestamp"),
            )
            recovered.append(row.id)
        else:
            with lake.catalog.session() as session:
                live = session.get(Ingest, row.id)
                if live is not None and live.status == "pending":
                    live.status = "failed"
                    live.finished_at = utcnow()
                    live.error = "The ingesting process stopped before its Delta commit."
            failed.append(row.id)
    return ReconcileResult(recovered, failed)
