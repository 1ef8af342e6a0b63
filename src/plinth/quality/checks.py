"""Compile contracts to DuckDB SQL and evaluate them on Arrow batches, vectorized.

Each row check becomes a predicate (true or NULL = pass, as in SQL CHECK constraints; the
built-in rules handle NULL explicitly). A batch is evaluated in one DuckDB query that returns,
per row, a bit mask of the failed checks; rows whose mask has an ``error`` bit are quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from plinth._core.sql import literal, quote
from plinth.errors import ContractError
from plinth.lake.duck import duck_type
from plinth.quality.contracts import Bound, Contract, RowCheck, Severity

if TYPE_CHECKING:
    import duckdb

BITS_PER_MASK = 62


def _unpack(rule: Any, default: Severity) -> tuple[Any, Severity]:
    if isinstance(rule, Bound):
        return rule.value, rule.severity or default
    return rule, default


def expand_row_checks(contract: Contract) -> list[RowCheck]:
    """Return the contract's row checks (unique rules excluded: they need state across batches).

    Example:
        >>> c = Contract(table="t", columns={"a": {"allowed": ["x", "y"]}})
        >>> expand_row_checks(c)[0].failure
        '"a" NOT IN (\\'x\\', \\'y\\')'
    """
    out: list[RowCheck] = []
    for column, rules in contract.columns.items():
        default = rules.severity or contract.severity
        col = quote(column)

        def add(
            kind: str, failure: str, severity: Severity, column: str = column, col: str = col
        ) -> None:
            predicate = failure_to_predicate(kind, col, failure)
            out.append(
                RowCheck(
                    name=f"{column}.{kind}",
                    severity=severity,
                    predicate=predicate,
                    failure=failure,
                    kind=kind,
                    column=column,
                )
            )

        value, severity = _unpack(rules.not_null, default)
        if value:
            add("not_null", f"{col} IS NULL", severity)
        for kind, op in (("min", "<"), ("max", ">")):
            value, severity = _unpack(getattr(rules, kind), default)
            if value is not None:
                add(kind, f"{col} {op} {literal(value)}", severity)
        value, severity = _unpack(rules.allowed, default)
        if value is not None:
            items = ", ".join(literal(v) for v in value) or "NULL"
            add("allowed", f"{col} NOT IN ({items})", severity)
        value, severity = _unpack(rules.regex, default)
        if value is not None:
            add("regex", f"NOT regexp_matches({col}, {literal(value)})", severity)
        for kind, op in (("min_length", "<"), ("max_length", ">")):
            value, severity = _unpack(getattr(rules, kind), default)
            if value is not None:
                add(kind, f"length({col}) {op} {int(value)}", severity)
    for check in contract.checks:
        out.append(
            RowCheck(
                name=check.name,
                severity=check.severity or contract.severity,
                predicate=check.sql,
                failure=f"NOT ({check.sql})",
                kind="sql",
            )
        )
    return out


def failure_to_predicate(kind: str, column: str, failure: str) -> str:
    """The pass form of a built-in failure condition (for display and documentation).

    Example:
        >>> failure_to_predicate("min", '"a"', '"a" < 0')
        '"a" IS NULL OR NOT ("a" < 0)'
    """
    if kind == "not_null":
        return f"{column} IS NOT NULL"
    return f"{column} IS NULL OR NOT ({failure})"


@dataclass(frozen=True)
class UniqueCheck:
    """A uniqueness rule over one or more columns."""

    name: str
    columns: list[str]
    severity: Severity


def unique_checks(contract: Contract) -> list[UniqueCheck]:
    """Return the contract's uniqueness rules: column-level ``unique`` and compound keys."""
    out: list[UniqueCheck] = []
    for column, rules in contract.columns.items():
        value, severity = _unpack(rules.unique, rules.severity or contract.severity)
        if value:
            out.append(UniqueCheck(f"{column}.unique", [column], severity))
    for rule in contract.unique:
        name = rule.name or f"unique({','.join(rule.columns)})"
        out.append(UniqueCheck(name, list(rule.columns), rule.severity or contract.severity))
    return out


def schema_problems(contract: Contract, schema: pa.Schema) -> list[str]:
    """Return how ``schema`` breaks the contract: missing columns, wrong types, extra columns."""
    from plinth.lake.schema import can_cast, parse_type

    problems = []
    for column in sorted(contract.referenced_columns()):
        if schema.get_field_index(column) < 0:
            problems.append(f"column '{column}' is missing")
    for column, rules in contract.columns.items():
        index = schema.get_field_index(column)
        if rules.type and index >= 0:
            expected = parse_type(rules.type)
            actual = schema.field(index).type
            if actual != expected and not can_cast(actual, expected):
                problems.append(f"column '{column}' is {actual}, the contract says {rules.type}")
    if not contract.schema_rule.allow_extra_columns:
        extra = [n for n in schema.names if n not in contract.columns]
        if extra:
            problems.append(f"column(s) {', '.join(extra)} are not in the contract")
    return problems


def validate(contract: Contract, schema: pa.Schema, connection: duckdb.DuckDBPyConnection) -> None:
    """Check that every rule of ``contract`` can be evaluated on ``schema``; raise otherwise.

    Unknown columns, rules of the wrong kind for a column's type (``min`` on a string compared
    with a number), and SQL that does not bind are all errors here, never silent passes.
    """
    problems = [p for p in schema_problems(contract, schema) if "is missing" in p]
    empty = pa.Table.from_batches([], schema=schema)
    connection.register("__plinth_empty", empty)
    try:
        for check in expand_row_checks(contract):
            if check.column is not None and schema.get_field_index(check.column) < 0:
                continue
            try:
                connection.execute(f"SELECT ({check.failure})::BOOLEAN FROM __plinth_empty LIMIT 0")
            except Exception as exc:
                reason = str(exc).splitlines()[0]
                problems.append(f"check '{check.name}' cannot be evaluated: {reason}")
    finally:
        connection.unregister("__plinth_empty")
    if problems:
        raise ContractError(
            f"The contract of table '{contract.table}' does not fit the table: "
            f"{'; '.join(problems)}.",
            hint="Fix the column names, rule values or SQL in the contract and apply it again.",
        )


@dataclass
class BatchVerdict:
    """The outcome for one batch: which rows pass, and the failed checks of each failing row."""

    keep: np.ndarray
    failed_rows: np.ndarray
    failed_names: list[list[str]]
    counts: dict[str, int] = field(default_factory=dict)
    warned_rows: int = 0


class RowEvaluator:
    """Evaluate row checks and uniqueness on Arrow batches with one DuckDB query per batch.

    Example:
        >>> import duckdb
        >>> c = Contract(table="t", columns={"a": {"min": 0}})
        >>> ev = RowEvaluator(c, pa.schema([("a", pa.int64())]), duckdb.connect())
        >>> ev.evaluate(pa.record_batch({"a": [1, -1, None]})).keep.tolist()
        [True, False, True]
    """

    def __init__(
        self,
        contract: Contract,
        schema: pa.Schema,
        connection: duckdb.DuckDBPyConnection,
        existing: Any = None,
    ) -> None:
        self.connection = connection
        self.checks = expand_row_checks(contract)
        self.uniques = unique_checks(contract)
        self.names = [c.name for c in self.checks] + [u.name for u in self.uniques]
        severities = [c.severity for c in self.checks] + [u.severity for u in self.uniques]
        self.is_error = np.array([s == "error" for s in severities], dtype=bool)
        for i, unique in enumerate(self.uniques):
            cols = ", ".join(quote(c) for c in unique.columns)
            types = ", ".join(
                f"{quote(c)} {duck_type(connection, schema.field(c).type)}" for c in unique.columns
            )
            connection.execute(f"CREATE TEMP TABLE __plinth_seen_{i} ({types})")
            if existing is not None:
                connection.register("__plinth_existing", existing)
                connection.execute(
                    f"INSERT INTO __plinth_seen_{i} SELECT DISTINCT {cols} "
                    f"FROM __plinth_existing WHERE {_all_not_null(unique.columns)}"
                )
                connection.unregister("__plinth_existing")
        self._sql = self._compile()

    def _compile(self) -> str:
        # A plain projection keeps DuckDB's insertion order, so mask i belongs to row i.
        # CASE with constant bits measured about 2.5x faster than casting booleans and shifting.
        failures = [c.failure for c in self.checks]
        parts = []
        for start in range(0, len(failures), BITS_PER_MASK):
            chunk = failures[start : start + BITS_PER_MASK]
            terms = " | ".join(
                f"(CASE WHEN {f} THEN {1 << j} ELSE 0 END)::BIGINT" for j, f in enumerate(chunk)
            )
            parts.append(f"({terms}) AS m{start // BITS_PER_MASK}")
        if not parts:
            return ""
        return f"SELECT {', '.join(parts)} FROM __plinth_batch"

    def _unique_sql(self, index: int, unique: UniqueCheck) -> str:
        keys = ", ".join(quote(c) for c in unique.columns)
        match = " AND ".join(f"s.{quote(c)} = b.{quote(c)}" for c in unique.columns)
        return (
            f"SELECT (row_number() OVER (PARTITION BY {keys} ORDER BY __plinth_row) > 1 "
            f"OR EXISTS (SELECT 1 FROM __plinth_seen_{index} s WHERE {match})) "
            f"AND {_all_not_null(unique.columns)} AS dup "
            f"FROM (SELECT {keys}, row_number() OVER () AS __plinth_row FROM __plinth_batch) b "
            f"ORDER BY __plinth_row"
        )

    def _masks(self, batch: pa.RecordBatch) -> list[np.ndarray]:
        masks: list[np.ndarray] = []
        if self._sql:
            result = self.connection.sql(self._sql).to_arrow_table()
            masks = [result.column(i).to_numpy().copy() for i in range(result.num_columns)]
        first = len(self.checks)
        for i, unique in enumerate(self.uniques):
            bit = first + i
            dup = self.connection.sql(self._unique_sql(i, unique)).to_arrow_table().column(0)
            flags = dup.to_numpy(zero_copy_only=False).astype(np.int64)
            while len(masks) <= bit // BITS_PER_MASK:
                masks.append(np.zeros(batch.num_rows, dtype=np.int64))
            masks[bit // BITS_PER_MASK] |= flags << (bit % BITS_PER_MASK)
        return masks

    def evaluate(self, batch: pa.RecordBatch) -> BatchVerdict:
        """Return which rows of ``batch`` pass and, for failing rows, the names that failed."""
        n = batch.num_rows
        if not self.names or n == 0:
            return BatchVerdict(np.ones(n, dtype=bool), np.zeros(0, dtype=np.int64), [])
        self.connection.register("__plinth_batch", batch)
        try:
            masks = self._masks(batch)
        finally:
            self.connection.unregister("__plinth_batch")
        any_fail = np.zeros(n, dtype=bool)
        for mask in masks:
            any_fail |= mask != 0
        rows = np.flatnonzero(any_fail)
        keep = np.ones(n, dtype=bool)
        failed_names: list[list[str]] = []
        counts: dict[str, int] = {}
        warned = 0
        if rows.size:
            bits = np.zeros((rows.size, len(self.names)), dtype=bool)
            for m, mask in enumerate(masks):
                sub = mask[rows]
                for j in range(min(BITS_PER_MASK, len(self.names) - m * BITS_PER_MASK)):
                    bits[:, m * BITS_PER_MASK + j] = (sub >> j) & 1 == 1
            errors = (bits & self.is_error).any(axis=1)
            keep[rows[errors]] = False
            warned = int((~errors).sum())
            for j, name in enumerate(self.names):
                count = int(bits[:, j].sum())
                if count:
                    counts[name] = count
            failed_names = [[self.names[j] for j in np.flatnonzero(r)] for r in bits[errors]]
            rows = rows[errors]
        self._remember(batch, keep)
        return BatchVerdict(keep, rows, failed_names, counts, warned)

    def _remember(self, batch: pa.RecordBatch, keep: np.ndarray) -> None:
        if not self.uniques:
            return
        kept = batch.filter(pa.array(keep))
        self.connection.register("__plinth_kept", kept)
        try:
            for i, unique in enumerate(self.uniques):
                cols = ", ".join(quote(c) for c in unique.columns)
                self.connection.execute(
                    f"INSERT INTO __plinth_seen_{i} SELECT DISTINCT {cols} FROM __plinth_kept "
                    f"WHERE {_all_not_null(unique.columns)}"
                )
        finally:
            self.connection.unregister("__plinth_kept")


def _all_not_null(columns: list[str]) -> str:
    return " AND ".join(f"{quote(c)} IS NOT NULL" for c in columns)
