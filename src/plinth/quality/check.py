"""Re-run a table's contract on a stored version (``plinth check``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plinth._core.clock import to_utc_datetime, utcnow
from plinth.errors import NotFoundError
from plinth.quality.gate import (
    TableCheck,
    checks_summary,
    freshness_check,
    overall_status,
    row_count_check,
)

if TYPE_CHECKING:
    from plinth.quality.service import Quality

CHECK_BATCH_ROWS = 1 << 20


@dataclass
class CheckReport:
    """The outcome of checking one stored version against a contract."""

    table: str
    version: int
    contract_version: int
    rows_checked: int = 0
    rows_failed: int = 0
    rows_warned: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    table_checks: list[TableCheck] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``failed`` on any error-level failure, ``warned`` on warnings only, else ``passed``."""
        return overall_status(self.rows_failed, self.rows_warned, self.table_checks, "failed")

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "table": self.table,
            "version": self.version,
            "contract_version": self.contract_version,
            "status": self.status,
            "rows_checked": self.rows_checked,
            "rows_failed": self.rows_failed,
            "rows_warned": self.rows_warned,
            "failures": self.failures,
            "table_checks": {c.name: c.as_dict() for c in self.table_checks},
        }


def check_version(quality: Quality, table: str, version: int | None = None) -> CheckReport:
    """Evaluate the table's latest contract on a stored version, out of core, and record it.

    Example:
        >>> # check_version(ws.quality, "flights").status
    """
    import duckdb
    import pyarrow.compute as pc

    from plinth.quality.checks import RowEvaluator, validate

    lake = quality.ws.lake
    info = lake.version(table, version)
    applied = quality.contract(table)
    if applied is None:
        raise NotFoundError(
            f"Table '{table}' has no data contract.",
            hint=f"Write contracts/{table}.yaml and run 'plinth contract apply'.",
        )
    contract = applied.contract
    dataset = lake.scan(table, info.version)
    connection = duckdb.connect()
    report = CheckReport(table, info.version, applied.version)
    try:
        validate(contract, dataset.schema, connection)
        evaluator = RowEvaluator(contract, dataset.schema, connection)
        newest = None
        rule = contract.freshness
        for batch in dataset.to_batches(batch_size=CHECK_BATCH_ROWS):
            verdict = evaluator.evaluate(batch)
            report.rows_checked += batch.num_rows
            report.rows_failed += int(verdict.failed_rows.size)
            report.rows_warned += verdict.warned_rows
            for name, count in verdict.counts.items():
                report.failures[name] = report.failures.get(name, 0) + count
            if rule is not None and batch.num_rows and rule.column in batch.schema.names:
                value = to_utc_datetime(pc.max(batch.column(rule.column)).as_py())
                if value is not None and (newest is None or value > newest):
                    newest = value
    finally:
        connection.close()
    if contract.row_count is not None:
        report.table_checks.append(row_count_check(contract, report.rows_checked))
    if rule is not None:
        report.table_checks.append(freshness_check(contract, newest, utcnow()))
        if not report.table_checks[-1].passed and info.version == lake.version(table).version:
            from plinth.quality.observability import record_freshness_breach

            record_freshness_breach(lake, table, rule.max_age_delta)
    quality.record_result(
        table_name=table,
        table_version=info.version,
        contract_version=applied.version,
        ingest_id=None,
        kind="check",
        status=report.status,
        rows_checked=report.rows_checked,
        rows_passed=report.rows_checked - report.rows_failed,
        rows_warned=report.rows_warned,
        rows_quarantined=0,
        checks=checks_summary(report.failures, report.table_checks),
    )
    return report
