"""The quality gate: checks each ingest batch against the table's contract as it streams.

Passing rows go on to the Delta commit; rows failing an ``error`` check are spooled to a local
Parquet file and, once the main commit is recorded, appended to ``<table>__quarantine`` with the
names of the checks they failed. Table-level checks (schema, row count, freshness) of severity
``error`` block the commit. The spool lives in the workspace, so a crash between the main commit
and the quarantine write loses nothing: it is flushed on the next open.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from plinth._core.clock import human_duration, to_utc_datetime, utcnow
from plinth.errors import ContractViolationError
from plinth.quality.checks import RowEvaluator, schema_problems, validate
from plinth.quality.contracts import Contract

if TYPE_CHECKING:
    from plinth.lake.hooks import IngestContext
    from plinth.lake.records import VersionInfo
    from plinth.quality.service import Quality

FAILED_COLUMN = "_plinth_failed_checks"
INGEST_COLUMN = "_plinth_ingest_id"
TIME_COLUMN = "_plinth_quarantined_at"
META_COLUMNS = (FAILED_COLUMN, INGEST_COLUMN, TIME_COLUMN)
QUARANTINE_SUFFIX = "__quarantine"


def quarantine_name(table: str) -> str:
    """Return the name of a table's quarantine table.

    Example:
        >>> quarantine_name("flights")
        'flights__quarantine'
    """
    return f"{table}{QUARANTINE_SUFFIX}"


def overall_status(
    rows_failed: int, rows_warned: int, table_checks: list[TableCheck], failed: str
) -> str:
    """Summarize a check run: ``failed`` (named by the caller), ``warned`` or ``passed``.

    Rows that fail an error check, or an error table check that did not pass, make the run
    ``failed``; warnings alone make it ``warned``.

    Example:
        >>> overall_status(0, 2, [], "quarantined")
        'warned'
    """
    blocking = any(not c.passed and c.severity == "error" for c in table_checks)
    if rows_failed or blocking:
        return failed
    if rows_warned or any(not c.passed for c in table_checks):
        return "warned"
    return "passed"


def checks_summary(counts: dict[str, int], table_checks: list[TableCheck]) -> dict[str, Any]:
    """Failure counts per row check and the outcome of each table check, as stored JSON."""
    return {
        "rows": dict(sorted(counts.items())),
        "table": {c.name: c.as_dict() for c in table_checks},
    }


class TableCheck:
    """The outcome of one table-level check."""

    def __init__(self, name: str, severity: str, passed: bool, message: str) -> None:
        self.name = name
        self.severity = severity
        self.passed = passed
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the catalog."""
        return {
            "severity": self.severity,
            "passed": self.passed,
            "message": self.message,
        }


def freshness_check(contract: Contract, newest: datetime | None, now: datetime) -> TableCheck:
    """Evaluate the contract's freshness rule against the newest timestamp seen."""
    rule = contract.freshness
    assert rule is not None
    limit = rule.max_age_delta
    if newest is None:
        return TableCheck("freshness", rule.severity, False, f"'{rule.column}' has no values.")
    age = now - newest
    passed = age <= limit
    verb = "within" if passed else "older than"
    return TableCheck(
        "freshness",
        rule.severity,
        passed,
        f"newest '{rule.column}' is {newest.isoformat()}, {human_duration(age)} old, {verb} the "
        f"allowed {human_duration(limit)}",
    )


def row_count_check(contract: Contract, rows: int) -> TableCheck:
    """Evaluate the contract's row-count bounds on the table's row count."""
    rule = contract.row_count
    assert rule is not None
    low_ok = rule.min is None or rows >= rule.min
    high_ok = rule.max is None or rows <= rule.max
    bounds = f"[{rule.min if rule.min is not None else '-'}, "
    bounds += f"{rule.max if rule.max is not None else '-'}]"
    return TableCheck(
        "row_count",
        rule.severity,
        low_ok and high_ok,
        f"the table would hold {rows:,} rows; the contract allows {bounds}",
    )


class QualityGate:
    """Evaluates one ingest against one contract version (see the module docstring)."""

    def __init__(
        self, quality: Quality, context: IngestContext, contract: Contract, version: int
    ) -> None:
        import duckdb

        self.quality = quality
        self.context = context
        self.contract = contract
        self.contract_version = version
        self.table_checks: list[TableCheck] = []
        problems = schema_problems(contract, context.schema)
        if problems:
            check = TableCheck("schema", contract.schema_rule.severity, False, "; ".join(problems))
            self.table_checks.append(check)
            if check.severity == "error":
                self._block([check])
        self.connection = duckdb.connect()
        self.connection.execute("SET threads = 2")
        validate(contract, context.schema, self.connection)
        existing = None
        if context.mode == "append" and (contract.unique or _has_unique_column(contract)):
            existing = context.existing_dataset()
        self.evaluator = RowEvaluator(contract, context.schema, self.connection, existing)
        self.rows_checked = 0
        self.rows_passed = 0
        self.rows_warned = 0
        self.rows_quarantined = 0
        self.counts: dict[str, int] = {}
        self.newest: datetime | None = None
        self.spool_path: Path = quality.spool_dir() / f"{context.ingest_id}.parquet"
        self._writer: Any = None
        self._quarantine_schema = pa.schema(
            [
                *context.schema,
                pa.field(FAILED_COLUMN, pa.list_(pa.string())),
                pa.field(INGEST_COLUMN, pa.string()),
                pa.field(TIME_COLUMN, pa.timestamp("us", tz="UTC")),
            ]
        )
        self._started = utcnow()

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Check ``batch``; spool the failing rows and return the passing ones."""
        verdict = self.evaluator.evaluate(batch)
        n = batch.num_rows
        self.rows_checked += n
        self.rows_warned += verdict.warned_rows
        for name, count in verdict.counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
        if verdict.failed_rows.size:
            self._spool(batch.take(pa.array(verdict.failed_rows)), verdict.failed_names)
            self.rows_quarantined += int(verdict.failed_rows.size)
            batch = batch.filter(pa.array(verdict.keep))
        self.rows_passed += batch.num_rows
        rule = self.contract.freshness
        if rule is not None and batch.num_rows:
            index = batch.schema.get_field_index(rule.column)
            if index >= 0:
                newest = to_utc_datetime(pc.max(batch.column(index)).as_py())
                if newest is not None and (self.newest is None or newest > self.newest):
                    self.newest = newest
        return batch

    def _spool(self, rows: pa.RecordBatch, names: list[list[str]]) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.spool_path, self._quarantine_schema)
        arrays = [
            *rows.columns,
            pa.array(names, type=pa.list_(pa.string())),
            pa.array([self.context.ingest_id] * rows.num_rows, type=pa.string()),
            pa.array([self._started] * rows.num_rows, type=pa.timestamp("us", tz="UTC")),
        ]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._quarantine_schema))

    def finish(self) -> None:
        """Run the table-level checks; an ``error`` failure blocks the commit."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.contract.row_count is not None:
            self.table_checks.append(row_count_check(self.contract, self._resulting_rows()))
        if self.contract.freshness is not None:
            newest = self.newest
            if self.context.mode != "overwrite":
                newest = _max_datetime(newest, self._existing_newest())
            self.table_checks.append(freshness_check(self.contract, newest, utcnow()))
        blocking = [c for c in self.table_checks if not c.passed and c.severity == "error"]
        if blocking:
            self._block(blocking)

    def _block(self, checks: list[TableCheck]) -> None:
        details = "; ".join(f"{c.name}: {c.message}" for c in checks)
        raise ContractViolationError(
            f"The contract of table '{self.context.table}' blocked this ingest: {details}.",
            hint="Fix the data, or change the contract's rule (or make it severity: warn) "
            "and apply it again. Nothing was committed.",
        )

    def _resulting_rows(self) -> int:
        if self.context.mode == "overwrite" or self.context.existing_version is None:
            return self.rows_passed
        current = self.context.lake.version(self.context.table).row_count
        return current + self.rows_passed

    def _existing_newest(self) -> datetime | None:
        rule = self.contract.freshness
        dataset = self.context.existing_dataset()
        if rule is None or dataset is None or rule.column not in dataset.schema.names:
            return None
        column = dataset.to_table(columns=[rule.column]).column(0)
        return to_utc_datetime(pc.max(column).as_py()) if len(column) else None

    def committed(self, info: VersionInfo) -> None:
        """Move spooled rows to the quarantine table and record the result (and anomalies)."""
        self.connection.close()
        if self.spool_path.exists():
            self.quality.flush_spool(self.context.table, self.spool_path)
        stale = any(c.name == "freshness" and not c.passed for c in self.table_checks)
        if stale and self.contract.freshness is not None:
            from plinth.quality.observability import record_freshness_breach

            record_freshness_breach(
                self.context.lake, self.context.table, self.contract.freshness.max_age_delta
            )
        self.quality.record_result(
            table_name=self.context.table,
            table_version=info.version,
            contract_version=self.contract_version,
            ingest_id=self.context.ingest_id,
            kind="ingest",
            status=self.status(),
            rows_checked=self.rows_checked,
            rows_passed=self.rows_passed,
            rows_warned=self.rows_warned,
            rows_quarantined=self.rows_quarantined,
            checks=self.checks_summary(),
        )

    def abort(self, error: BaseException) -> None:
        """Drop the spool (nothing was committed) and record a blocked ingest."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        with contextlib.suppress(Exception):
            self.connection.close()
        with contextlib.suppress(FileNotFoundError):
            self.spool_path.unlink()
        if isinstance(error, ContractViolationError):
            self.quality.record_result(
                table_name=self.context.table,
                table_version=None,
                contract_version=self.contract_version,
                ingest_id=self.context.ingest_id,
                kind="ingest",
                status="blocked",
                rows_checked=self.rows_checked,
                rows_passed=0,
                rows_warned=self.rows_warned,
                rows_quarantined=0,
                checks=self.checks_summary(),
            )

    def status(self) -> str:
        """``quarantined`` if rows were set aside, ``warned`` if only warnings, else ``passed``."""
        return overall_status(
            self.rows_quarantined, self.rows_warned, self.table_checks, "quarantined"
        )

    def checks_summary(self) -> dict[str, Any]:
        """Failure counts per row check and the outcome of each table check."""
        return checks_summary(self.counts, self.table_checks)


def _has_unique_column(contract: Contract) -> bool:
    return any(bool(getattr(r.unique, "value", r.unique)) for r in contract.columns.values())


def _max_datetime(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
