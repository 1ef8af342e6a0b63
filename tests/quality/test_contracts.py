"""Contracts: YAML validation with file and line, compilation to checks, apply-time checks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from plinth.errors import ContractError
from plinth.quality.contracts import Contract, load_contract, parse_contract, parse_duration

GOOD = """\
table: t
columns:
  id: {not_null: true, unique: true}
  score: {min: 0, max: {value: 100, severity: warn}}
  city: {allowed: [a, b], regex: "^[a-z]$", max_length: 1}
unique:
  - columns: [id, city]
checks:
  - {name: positive, sql: "score IS NULL OR score >= 0", severity: warn}
row_count: {min: 1}
freshness: {column: at, max_age: 2d}
"""


def test_parse_and_expand_row_checks():
    contract = parse_contract(GOOD)
    checks = {c.name: (c.severity, c.kind) for c in contract.row_checks()}
    assert checks == {
        "id.not_null": ("error", "not_null"),
        "score.min": ("error", "min"),
        "score.max": ("warn", "max"),
        "city.allowed": ("error", "allowed"),
        "city.regex": ("error", "regex"),
        "city.max_length": ("error", "max_length"),
        "positive": ("warn", "sql"),
    }
    assert contract.freshness.max_age_delta.days == 2
    assert contract.referenced_columns() == {"id", "score", "city", "at"}


def test_spec_hash_is_stable_and_changes_with_the_spec():
    a, b = parse_contract(GOOD), parse_contract(GOOD)
    assert a.spec_hash() == b.spec_hash()
    assert parse_contract(GOOD.replace("min: 1", "min: 2")).spec_hash() != a.spec_hash()


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("table: t\ncolumns:\n  a:\n    not_nul: true\n", 4, "not_nul"),
        ("table: t\ncolumns:\n  a: {min: {value: 1, severity: fatal}}\n", 3, "severity"),
        ("table: t\nfreshness: {column: a, max_age: 3 years}\n", 2, "duration"),
        ("table: t\ncolumns:\n  a: {regex: '(['}\n", 3, "regular expression"),
        ("table: t\nchecks:\n  - {name: 'bad name!', sql: 'a > 0'}\n", 3, "check names"),
    ],
)
def test_malformed_contract_names_file_line_and_problem(text, line, fragment):
    with pytest.raises(ContractError) as info:
        parse_contract(text, "contracts/t.yaml")
    message = str(info.value)
    assert "contracts/t.yaml" in message
    assert f"line {line}" in message
    assert fragment in message


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("table: t\ncolumns:\n  a: {min: 1\n")
    with pytest.raises(ContractError, match=r"t\.yaml, line \d+.*not valid YAML"):
        load_contract(path)
    with pytest.raises(ContractError, match="Cannot read"):
        load_contract(tmp_path / "missing.yaml")


def test_durations():
    assert parse_duration("90m").total_seconds() == 5400
    assert parse_duration(30).total_seconds() == 30
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_apply_rejects_unknown_columns_and_unevaluable_checks(tmp_path):
    import plinth

    ws = plinth.Workspace(settings=plinth.Settings(home=tmp_path / "ws", user="t"))
    ws.lake.ingest(pa.table({"a": [1], "s": ["x"]}), table="t")
    with pytest.raises(ContractError, match="'zz'"):
        ws.quality.apply(Contract(table="t", columns={"zz": {"not_null": True}}))
    with pytest.raises(ContractError, match=r"s.min.*cannot be evaluated"):
        ws.quality.apply(Contract(table="t", columns={"s": {"min": 3}}))
    with pytest.raises(ContractError, match=r"nope.*cannot be evaluated"):
        ws.quality.apply(Contract(table="t", checks=[{"name": "nope", "sql": "missing > 1"}]))
    first = ws.quality.apply(Contract(table="t", columns={"a": {"min": 0}}))
    again = ws.quality.apply(Contract(table="t", columns={"a": {"min": 0}}))
    changed = ws.quality.apply(Contract(table="t", columns={"a": {"min": 1}}))
    assert (first.version, first.changed) == (1, True)
    assert (again.version, again.changed) == (1, False)
    assert (changed.version, changed.changed) == (2, True)
    assert ws.quality.contract("t", version=1).contract.columns["a"].min == 0
    ws.close()
