"""Data contracts: what a table's rows and the table as a whole must satisfy.

A contract is declared in YAML (``contracts/<table>.yaml``) or in Python, validated with
pydantic before anything runs, and versioned in the catalog when applied.

Example YAML::

    table: flights
    columns:
      origin: {not_null: true, allowed: [EWR, JFK, LGA]}
      dep_delay: {type: int64, min: -100, max: {value: 1500, severity: warn}}
      tailnum: {regex: "^N[0-9A-Z]+$", max_length: 6, severity: warn}
      passenger_email: {pii: hash}
    unique:
      - columns: [year, month, day, carrier, flight, origin, sched_dep_time]
    row_count: {min: 1}
    freshness: {column: time_hour, max_age: 400d, severity: warn}
    checks:
      - name: arrival_after_departure
        sql: "arr_time IS NULL OR dep_time IS NOT NULL"
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plinth._core.yaml_lines import line_of, load_yaml
from plinth.errors import ContractError

Severity = Literal["error", "warn"]
#: What happens to a personal-data column outside its table: a keyed hash, or left out.
PiiAction = Literal["hash", "drop"]
PII_ACTIONS: tuple[PiiAction, ...] = ("hash", "drop")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")


def parse_duration(text: str | int | float) -> timedelta:
    """Parse ``30s``, ``15m``, ``6h``, ``2d`` or ``1w`` (a bare number is seconds).

    Example:
        >>> parse_duration("2d")
        datetime.timedelta(days=2)
    """
    try:
        if isinstance(text, int | float):
            return timedelta(seconds=float(text))
        match = _DURATION.match(str(text))
        if match:
            return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    except OverflowError:
        raise ValueError(f"'{text}' is a longer duration than a date can hold") from None
    except ValueError:  # NaN
        pass
    raise ValueError(f"'{text}' is not a duration; use e.g. 30s, 15m, 6h, 2d or 1w")


class Bound(BaseModel):
    """A check value with its own severity, e.g. ``{value: 1500, severity: warn}``."""

    model_config = ConfigDict(extra="forbid")
    value: Any
    severity: Severity | None = None


def _bound(value: Any) -> Any:
    if isinstance(value, dict) and "value" in value:
        return Bound.model_validate(value)
    return value


class ColumnRules(BaseModel):
    """Checks on one column. Each rule may be a plain value or ``{value, severity}``.

    ``pii`` marks personal data: ``hash`` (``true`` means the same) replaces its values by a
    keyed hash wherever Plinth copies them out of the table (prediction logs), ``drop`` leaves
    the column out; either way its values never appear in monitoring reports or summaries.
    """

    model_config = ConfigDict(extra="forbid")

    type: str | None = None
    not_null: bool | Bound = False
    unique: bool | Bound = False
    min: float | int | str | Bound | None = None
    max: float | int | str | Bound | None = None
    allowed: list[Any] | Bound | None = None
    regex: str | Bound | None = None
    min_length: int | Bound | None = None
    max_length: int | Bound | None = None
    severity: Severity | None = None
    pii: PiiAction | None = None

    @model_validator(mode="before")
    @classmethod
    def _bounds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            try:
                out[key] = value if key in {"type", "severity", "pii"} else _bound(value)
            except ValidationError as exc:
                detail = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                raise ValueError(f"rule '{key}' has {detail}") from None
        return out

    @field_validator("pii", mode="before")
    @classmethod
    def _pii(cls, value: Any) -> Any:
        if value is None or value is False:
            return None
        if value is True:
            return "hash"
        if isinstance(value, str) and value.strip().lower() in PII_ACTIONS:
            return value.strip().lower()
        raise ValueError(
            f"pii is {value!r}; use 'hash' (a keyed hash replaces the values), 'drop' (the "
            "column is left out) or true (the same as 'hash')"
        )

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: Any) -> Any:
        pattern = value.value if isinstance(value, Bound) else value
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value


class UniqueRule(BaseModel):
    """Rows must be unique over these columns (within the ingest and against the table)."""

    model_config = ConfigDict(extra="forbid")
    columns: list[str] = Field(min_length=1)
    severity: Severity | None = None
    name: str | None = None


class SqlCheck(BaseModel):
    """A custom row check: a SQL predicate every row must satisfy (DuckDB syntax)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    sql: str = Field(min_length=1)
    severity: Severity | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("check names use letters, digits, '_', '.', ':' and '-'")
        return value


class RowCountRule(BaseModel):
    """Bounds on the number of rows in the table after the ingest."""

    model_config = ConfigDict(extra="forbid")
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    severity: Severity = "error"


class FreshnessRule(BaseModel):
    """The newest value of ``column`` must be no older than ``max_age``."""

    model_config = ConfigDict(extra="forbid")
    column: str
    max_age: str | int | float
    severity: Severity = "error"

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        parse_duration(value)
        return value

    @property
    def max_age_delta(self) -> timedelta:
        """``max_age`` as a timedelta."""
        return parse_duration(self.max_age)


class SchemaRule(BaseModel):
    """Whether columns outside the contract are allowed, and how severe a type mismatch is."""

    model_config = ConfigDict(extra="forbid")
    allow_extra_columns: bool = True
    severity: Severity = "error"


class Contract(BaseModel):
    """A table's data contract.

    Example:
        >>> c = Contract(table="t", columns={"a": {"not_null": True, "min": 0}})
        >>> [check.name for check in c.row_checks()]
        ['a.not_null', 'a.min']
    """

    model_config = ConfigDict(extra="forbid")

    table: str
    description: str | None = None
    severity: Severity = "error"
    columns: dict[str, ColumnRules] = Field(default_factory=dict)
    unique: list[UniqueRule] = Field(default_factory=list)
    checks: list[SqlCheck] = Field(default_factory=list)
    row_count: RowCountRule | None = None
    freshness: FreshnessRule | None = None
    schema_rule: SchemaRule = Field(default_factory=SchemaRule, alias="schema")

    @model_validator(mode="after")
    def _integers_fit(self) -> Contract:
        # JSON readers (the API's among them) hold integers in 64 bits: a larger one would be
        # stored, then fail every read of the contract.
        def walk(value: Any) -> None:
            if isinstance(value, dict):
                value = list(value.values())
            if isinstance(value, list):
                for item in value:
                    walk(item)
            elif isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError(f"{value} is larger than a 64-bit integer")

        walk(self.spec())
        return self

    def spec(self) -> dict[str, Any]:
        """The contract as plain JSON data (what the catalog stores)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def spec_hash(self) -> str:
        """A stable hash of the spec, to tell whether an apply changes anything."""
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()

    def row_checks(self) -> list[RowCheck]:
        """Every row-level check, named ``column.rule`` or by the custom check's name."""
        from plinth.quality.checks import expand_row_checks

        return expand_row_checks(self)

    def pii_columns(self) -> dict[str, PiiAction]:
        """Columns marked as personal data, with what to do with them (``hash`` or ``drop``).

        Example:
            >>> Contract(table="t", columns={"email": {"pii": "drop"}, "a": {}}).pii_columns()
            {'email': 'drop'}
        """
        return {name: rules.pii for name, rules in self.columns.items() if rules.pii is not None}

    def referenced_columns(self) -> set[str]:
        """Columns the contract names (custom SQL checks excluded)."""
        names = set(self.columns)
        for rule in self.unique:
            names.update(rule.columns)
        if self.freshness:
            names.add(self.freshness.column)
        return names


class RowCheck(BaseModel):
    """One compiled row-level check: its name, severity and SQL.

    ``predicate`` is true when a row passes; ``failure`` is true when it fails (NULL means
    the row passes, as in a SQL CHECK constraint). Evaluation uses ``failure``: a plain
    comparison is cheaper than a negated disjunction.
    """

    name: str
    severity: Severity
    predicate: str
    failure: str
    kind: str
    column: str | None = None


def parse_contract(text: str, origin: str = "<string>") -> Contract:
    """Parse and validate a YAML contract; errors name the file, line and fix.

    Example:
        >>> parse_contract("table: t\\ncolumns:\\n  a: {not_null: true}\\n").table
        't'
    """
    data = load_yaml(text, origin, "contract", ContractError)
    return contract_from_spec(data, origin, text)


def contract_from_spec(data: Any, origin: str = "<spec>", text: str | None = None) -> Contract:
    """Validate a contract given as plain data (what :meth:`Contract.spec` gives, or a parsed
    YAML ``text``, whose lines the errors then name).

    Example:
        >>> contract_from_spec({"table": "t", "columns": {"a": {"min": 0}}}).table
        't'
    """
    if not isinstance(data, dict):
        raise ContractError(
            f"{origin}: a contract must be a mapping with at least 'table:'.",
            hint="Start the file with 'table: <name>' and a 'columns:' section.",
        )
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            path = ".".join(str(p) for p in loc if p not in {"Bound"}) or "(root)"
            if text is None:  # plain data: no lines to name
                problems.append(f"{path}: {err['msg']}")
                continue
            line = line_of(text, loc, {"schema_rule": "schema"})
            where = f"line {line}" if line else "top level"
            problems.append(f"{where}: {path}: {err['msg']}")
        raise ContractError(
            f"{origin} is not a valid contract: {'; '.join(problems)}.",
            hint="See docs/quality.md for the contract format.",
        ) from exc


def load_contract(path: str | Path) -> Contract:
    """Load and validate a YAML contract file.

    Example:
        >>> # load_contract("contracts/flights.yaml")
    """
    from plinth._core.files import read_text

    text = read_text(
        path,
        what="the contract file",
        hint="Check the path; contracts live in contracts/<table>.yaml.",
        error=ContractError,
    )
    return parse_contract(text, str(path))


def read_contract(
    contract: Contract | str | Path, origin: str | None = None
) -> tuple[Contract, str | None]:
    """A validated contract and where it came from: a ``Contract`` as it is, a ``.yaml`` path
    (a ``Path``, or one line of text ending in ``.yaml``) loaded from the file, which is then
    its origin, any other text parsed as YAML.

    Example:
        >>> read_contract("table: t\\n")[0].table
        't'
    """
    if isinstance(contract, Contract):
        return contract, origin
    if isinstance(contract, Path) or (
        isinstance(contract, str) and "\n" not in contract and contract.endswith(".yaml")
    ):
        return load_contract(contract), origin or str(contract)
    if isinstance(contract, str):
        return parse_contract(contract, origin or "<string>"), origin
    raise ContractError(
        f"A contract is a Contract, YAML text or a .yaml file, not {type(contract).__name__}.",
        hint="Pass the contract file's path, or plinth.quality.contracts.Contract(...).",
    )
