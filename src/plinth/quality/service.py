"""The quality service of a workspace: contracts, gates on ingest, checks, quarantine.

Attached to the lake when a workspace opens it: every ingest into a table with a contract
passes through a :class:`~plinth.quality.gate.QualityGate`, and every new table version gets
a stored profile and an anomaly check.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import select

from plinth._core.clock import utcnow
from plinth.catalog import audit
from plinth.catalog.models import ContractVersion, Ingest, QualityResult
from plinth.errors import ContractError, NotFoundError
from plinth.quality.contracts import Contract, read_contract
from plinth.quality.gate import (
    INGEST_COLUMN,
    META_COLUMNS,
    QUARANTINE_SUFFIX,
    QualityGate,
    quarantine_name,
)

if TYPE_CHECKING:
    from plinth._core.settings import ResolvedSettings
    from plinth.governance.access import Principal
    from plinth.lake.hooks import IngestContext
    from plinth.lake.records import VersionInfo
    from plinth.workspace import Workspace

log = logging.getLogger("plinth.quality")
#: The permission that releases quarantined rows, and so may also see their personal data.
RELEASE_PERMISSION = "tables:write"


@dataclass(frozen=True)
class AppliedContract:
    """A contract version in the catalog."""

    table: str
    version: int
    contract: Contract
    changed: bool
    origin: str | None

    def to_dict(self) -> dict[str, Any]:
        """The contract version as the API answers it, the contract as its stored spec.

        Example:
            >>> c = Contract(table="t", columns={"a": {"min": 0}})
            >>> AppliedContract("t", 1, c, True, None).to_dict()["contract"]["columns"]
            {'a': {'not_null': False, 'unique': False, 'min': 0}}
        """
        return {"table": self.table, "version": self.version, "changed": self.changed,
                "origin": self.origin, "contract": self.contract.spec()}  # fmt: skip


def contracts_folder(resolved: ResolvedSettings) -> Path:
    """The project folder holding ``<table>.yaml`` contracts (``PLINTH_CONTRACTS_DIR``),
    relative to the folder of ``plinth.toml`` (else the current folder).

    Example:
        >>> from plinth._core.settings import load_settings
        >>> contracts_folder(load_settings()).name
        'contracts'
    """
    folder = Path(resolved.settings.contracts_dir).expanduser()
    if folder.is_absolute():
        return folder
    base = resolved.config_file.parent if resolved.config_file is not None else Path.cwd()
    return base / folder


@dataclass(frozen=True)
class QuarantineView:
    """Quarantined rows as shown to a person: personal data masked unless revealed.

    ``rows`` holds at most the rows asked for, ``total`` how many are in quarantine;
    ``masked`` names the personal-data columns of the table's contract and their action
    (``hash`` shows keyed hashes, ``drop`` shows ``***``); ``revealed`` is true when their raw
    values are shown.

    Example:
        >>> QuarantineView(pa.table({"email": ["***"]}), 1, {"email": "drop"}).revealed
        False
    """

    rows: pa.Table
    total: int
    masked: dict[str, str]
    revealed: bool = False


@dataclass(frozen=True)
class ReleaseResult:
    """What a quarantine release did."""

    released: int
    still_failing: int
    table_version: int | None


class Quality:
    """Data contracts and quality checks of one workspace.

    Example:
        >>> import plinth, tempfile
        >>> ws = plinth.Workspace(tempfile.mkdtemp())
        >>> ws.quality.apply("table: t\\ncolumns:\\n  a: {min: 0}\\n").version
        1
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.catalog = ws.catalog

    # -- contracts -------------------------------------------------------------------------

    def apply(
        self,
        contract: Contract | str | Path,
        origin: str | None = None,
        *,
        actor: str | None = None,
    ) -> AppliedContract:
        """Validate a contract (object, YAML text or file) and record it if it changed.

        A contract for an existing table is checked against the table's schema: unknown
        columns and rules that cannot be evaluated are refused here, before any ingest. The
        values of columns it marks as personal data (``pii``) are removed from the table's
        stored profiles in the same transaction. ``actor`` is who the catalog and the audit
        chain name (default: the workspace user; a server passes its authenticated caller).
        """
        from plinth.quality.privacy import scrub_stored_profiles

        contract, origin = read_contract(contract, origin)
        self._validate_against_table(contract)
        spec_hash = contract.spec_hash()
        actor = actor or self.ws.settings.user
        with self.catalog.session() as session:
            latest = self._latest_row(session, contract.table)
            if latest is not None and latest.spec_hash == spec_hash:
                return AppliedContract(contract.table, latest.version, contract, False, origin)
            version = (latest.version + 1) if latest is not None else 1
            session.add(
                ContractVersion(
                    table_name=contract.table,
                    version=version,
                    spec=contract.spec(),
                    spec_hash=spec_hash,
                    origin=origin,
                    created_at=utcnow(),
                    created_by=actor,
                )
            )
            audit.record(
                session,
                actor=actor,
                action="contract.apply",
                resource=f"contract:{contract.table}@{version}",
                details={"spec_hash": spec_hash, "origin": origin},
            )
            for name in (contract.table, quarantine_name(contract.table)):
                scrub_stored_profiles(session, name, contract.pii_columns())
        return AppliedContract(contract.table, version, contract, True, origin)

    def _validate_against_table(self, contract: Contract) -> None:
        import duckdb

        from plinth.lake import check_table_name
        from plinth.quality.checks import schema_problems, validate

        check_table_name(contract.table)
        try:
            info = self.ws.lake.version(contract.table)
        except NotFoundError:
            return
        schema = pa.schema(
            self.ws.lake.delta_table(contract.table, info.version).schema().to_arrow()
        )
        problems = [p for p in schema_problems(contract, schema) if "is missing" in p]
        if problems:
            raise ContractError(
                f"The contract of table '{contract.table}' names columns the table does not "
                f"have: {'; '.join(problems)}.",
                hint=f"The table's columns are: {', '.join(schema.names)}.",
            )
        connection = duckdb.connect()
        try:
            validate(contract, schema, connection)
        finally:
            connection.close()

    def _latest_row(self, session: Any, table: str) -> ContractVersion | None:
        return session.scalar(
            select(ContractVersion)
            .where(ContractVersion.table_name == table)
            .order_by(ContractVersion.version.desc())
            .limit(1)
        )

    def contract(self, table: str, version: int | None = None) -> AppliedContract | None:
        """Return the table's contract (latest, or a given version), or ``None``."""
        with self.catalog.session() as session:
            if version is None:
                row = self._latest_row(session, table)
            else:
                row = session.scalar(
                    select(ContractVersion).where(
                        ContractVersion.table_name == table, ContractVersion.version == version
                    )
                )
            if row is None:
                return None
            contract = Contract.model_validate(row.spec)
            return AppliedContract(table, row.version, contract, False, row.origin)

    def require_contract(self, table: str, version: int | None = None) -> AppliedContract:
        """The table's contract (latest, or a given version); NotFoundError when it has none.

        Example:
            >>> # ws.quality.require_contract("flights", 2).contract.row_checks()
        """
        applied = self.contract(table, version)
        if applied is None:
            raise NotFoundError(
                f"Table '{table}' has no contract" + (f" version {version}." if version else "."),
                hint="Run 'plinth contract list' to see the contracts.",
            )
        return applied

    def contracts(self) -> list[AppliedContract]:
        """Return the latest contract of every table that has one."""
        with self.catalog.session() as session:
            tables = session.scalars(select(ContractVersion.table_name).distinct()).all()
        found = [self.contract(t) for t in sorted(tables)]
        return [c for c in found if c is not None]

    def contracts_dir(self) -> Path:
        """The project folder holding ``<table>.yaml`` contracts (``PLINTH_CONTRACTS_DIR``)."""
        return contracts_folder(self.ws.resolved)

    def _sync_file(self, table: str) -> None:
        path = self.contracts_dir() / f"{table}.yaml"
        if path.is_file():
            self.apply(path)

    # -- hooks -----------------------------------------------------------------------------

    def gate_factory(self, context: IngestContext) -> QualityGate | None:
        """Return the gate for an ingest into a table with a contract, else ``None``."""
        if context.table.endswith(QUARANTINE_SUFFIX):
            return None
        self._sync_file(context.table)
        applied = self.contract(context.table)
        if applied is None:
            return None
        return QualityGate(self, context, applied.contract, applied.version)

    def on_version(self, info: VersionInfo) -> None:
        """Profile every new version and record anomalies against the previous one."""
        if info.table.endswith(QUARANTINE_SUFFIX) or not self.ws.settings.profile_on_ingest:
            return
        from plinth.quality.observability import detect_anomalies
        from plinth.quality.profiles import profile_version

        # The version is committed whatever happens here; a missing profile is computed
        # again on demand (plinth profile / plinth quality), so a failure only warns.
        try:
            profile_version(self.ws.lake, info.table, info.version)
            detect_anomalies(self.ws.lake, info.table, info.version)
        except Exception as exc:  # pragma: no cover - defensive
            log.warning("Profiling %s failed: %s", info.ref, exc)

    # -- quarantine spool ------------------------------------------------------------------

    def spool_dir(self) -> Path:
        """Local folder where quarantined rows wait for their ingest's commit."""
        return self.ws.home / "spool" / "quarantine"

    def flush_spool(self, table: str, path: Path) -> None:
        """Append a spool file to the table's quarantine table, then remove it."""
        # Quarantined rows are kept raw (release writes them back): encrypted at rest when
        # the workspace has a key.
        self.ws.lake.ingest(
            str(path),
            table=quarantine_name(table),
            evolve=True,
            format="parquet",
            checks=False,
            encrypt=True,
        )
        path.unlink()

    def recover_spools(self) -> None:
        """Flush spools of committed ingests and drop those of failed ones (after a crash)."""
        folder = self.spool_dir()
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.parquet")):
            with self.catalog.session() as session:
                row = session.get(Ingest, path.stem)
                status = None if row is None else row.status
                table = None if row is None else row.table_name
            if status == "committed" and table is not None:
                self.flush_spool(table, path)
            elif status in {"failed", None}:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    # -- results ---------------------------------------------------------------------------

    def record_result(self, **fields: Any) -> None:
        """Store one quality result."""
        with self.catalog.session() as session:
            session.add(QualityResult(created_at=utcnow(), **fields))

    def results(self, table: str, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest quality results of a table, newest first."""
        with self.catalog.session() as session:
            rows = session.scalars(
                select(QualityResult)
                .where(QualityResult.table_name == table)
                .order_by(QualityResult.id.desc())
                .limit(limit)
            ).all()
            return [
                {
                    "table": r.table_name,
                    "table_version": r.table_version,
                    "contract_version": r.contract_version,
                    "ingest_id": r.ingest_id,
                    "kind": r.kind,
                    "status": r.status,
                    "rows_checked": r.rows_checked,
                    "rows_passed": r.rows_passed,
                    "rows_warned": r.rows_warned,
                    "rows_quarantined": r.rows_quarantined,
                    "checks": r.checks,
                    "created_at": r.created_at,
                }
                for r in rows
            ]

    # -- quarantine ------------------------------------------------------------------------

    def quarantined(self, table: str, ingest_id: str | None = None) -> pa.Table:
        """Return the rows in a table's quarantine (optionally of one ingest), raw.

        Personal data is not masked here: this is what :meth:`release` writes back. To show
        rows to a person use :meth:`view_quarantined`.
        """
        name = quarantine_name(table)
        try:
            data = self.ws.lake.read(name)
        except NotFoundError:
            self.ws.lake.table(table)
            return pa.table({})
        if ingest_id is not None:
            import pyarrow.compute as pc

            data = data.filter(pc.equal(data.column(INGEST_COLUMN), ingest_id))
        return data

    def view_quarantined(
        self,
        table: str,
        ingest_id: str | None = None,
        *,
        limit: int | None = None,
        reveal: bool = False,
        principal: Principal | None = None,
    ) -> QuarantineView:
        """Return quarantined rows to show, with the contract's personal data masked.

        Columns the table's current contract marks ``pii`` show the keyed hash of prediction
        logs (``hash``) or ``***`` (``drop``). With ``reveal`` they show their raw values: that
        needs :data:`RELEASE_PERMISSION` (``principal`` defaults to the workspace's own user)
        and is recorded as a ``quarantine.reveal`` audit event; a refusal raises
        :class:`~plinth.governance.access.Forbidden` and is recorded as
        ``quarantine.reveal_denied``. The stored rows stay raw (see :meth:`release`).

        Example:
            >>> # view = ws.quality.view_quarantined("people", limit=20)
            >>> # view.masked, view.rows.column("email")[0]   # {'email': 'hash'}, '3f1a...'
        """
        from plinth.governance.access import Forbidden, local_principal
        from plinth.governance.pii import hashing_secret, mask
        from plinth.quality.privacy import table_pii

        rows = self.quarantined(table, ingest_id)
        total = rows.num_rows
        if limit is not None:
            rows = rows.slice(0, max(limit, 0))
        pii = table_pii(self.catalog, table)
        if not reveal:
            if pii and rows.num_rows:
                secret = hashing_secret(self.ws) if "hash" in pii.values() else b""
                rows = mask(rows, pii, secret=secret)
            return QuarantineView(rows, total, dict(pii))
        who = principal or local_principal(self.ws)
        project = self.ws.settings.project
        details = {"ingest_id": ingest_id, "rows": rows.num_rows, "columns": sorted(pii)}
        if not who.can(RELEASE_PERMISSION, project):
            self._audit("quarantine.reveal_denied", table, details, actor=who.subject)
            role = who.roles.get(project)
            why = f"its role there is {role}" if role else "it holds no role there"
            raise Forbidden(
                f"{who.name} may not reveal the personal data of the quarantined rows of "
                f"'{table}': that needs {RELEASE_PERMISSION} (the permission to release "
                f"quarantine) in project '{project}', and {why}.",
                hint="Leave out --reveal to see the rows with personal data masked, or ask an "
                "admin for a role that may release quarantine (developer or above).",
            )
        self._audit("quarantine.reveal", table, details, actor=who.subject)
        return QuarantineView(rows, total, dict(pii), revealed=True)

    def release(
        self, table: str, ingest_id: str | None = None, force: bool = False
    ) -> ReleaseResult:
        """Re-ingest quarantined rows into the table and remove them from quarantine.

        The rows go through the table's current contract again (unless ``force``): rows that
        now pass are committed as one new table version; rows that still fail return to the
        quarantine with their new failures.
        """
        rows = self.quarantined(table, ingest_id)
        if rows.num_rows == 0:
            return ReleaseResult(0, 0, None)
        data = rows.drop_columns([c for c in META_COLUMNS if c in rows.column_names])
        before = self._quarantine_count(table)
        ingest_ids = sorted(set(rows.column(INGEST_COLUMN).to_pylist()))
        info = self.ws.lake.ingest(data, table=table, checks=not force)
        predicate = _in_predicate(INGEST_COLUMN, ingest_ids)
        self.ws.lake.delete(quarantine_name(table), predicate)
        still = self._quarantine_count(table) - (before - rows.num_rows)
        self._audit(
            "quarantine.release",
            table,
            {
                "ingest_ids": ingest_ids,
                "released": info.rows_added,
                "still_failing": still,
                "table_version": info.version,
                "force": force,
            },
        )
        return ReleaseResult(info.rows_added, still, info.version)

    def purge(self, table: str, ingest_id: str | None = None) -> int:
        """Delete quarantined rows (all, or one ingest's); earlier versions keep them."""
        rows = self.quarantined(table, ingest_id)
        if rows.num_rows == 0:
            return 0
        predicate = None if ingest_id is None else _in_predicate(INGEST_COLUMN, [ingest_id])
        self.ws.lake.delete(quarantine_name(table), predicate)
        self._audit("quarantine.purge", table, {"ingest_id": ingest_id, "rows": rows.num_rows})
        return rows.num_rows

    def _audit(
        self, action: str, table: str, details: dict[str, Any], actor: str | None = None
    ) -> None:
        """Append a quarantine event; its table versions were recorded by the lake already."""
        with self.catalog.session() as session:
            audit.record(
                session,
                actor=actor or self.ws.settings.user,
                action=action,
                resource=f"table:{table}",
                details=details,
            )

    def _quarantine_count(self, table: str) -> int:
        try:
            return self.ws.lake.version(quarantine_name(table)).row_count
        except NotFoundError:
            return 0


def _in_predicate(column: str, values: list[str]) -> str:
    from plinth._core.sql import literal, quote

    return f"{quote(column)} IN ({', '.join(literal(v) for v in values)})"


def attach(ws: Workspace) -> Quality:
    """Create the workspace's quality service and hook it into the lake."""
    quality = Quality(ws)
    ws.lake.gate_factories.append(quality.gate_factory)
    ws.lake.version_listeners.append(quality.on_version)
    quality.recover_spools()
    return quality
