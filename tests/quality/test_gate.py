"""Contracts on ingest: good rows commit, bad rows are quarantined, table checks block."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from plinth.errors import ContractError, ContractViolationError, TableNotFoundError
from plinth.quality.check import check_version

CONTRACT = """\
table: people
columns:
  id: {not_null: true, unique: true}
  score: {min: 0, max: 100}
  city: {allowed: [a, b, c], severity: warn}
"""


def thousand_rows_with_three_bad() -> pa.Table:
    ids = list(range(1000))
    score = [50.0] * 1000
    city = ["a"] * 1000
    score[10] = -1.0  # score.min
    score[500] = 101.0  # score.max
    ids[900] = 5  # id.unique (5 is already there)
    city[7] = "zzz"  # warning only: kept
    return pa.table({"id": ids, "score": score, "city": city})


def test_three_bad_rows_of_1000_are_quarantined_with_their_checks(workspace):
    workspace.quality.apply(CONTRACT)
    info = workspace.lake.ingest(thousand_rows_with_three_bad(), table="people")
    assert (info.version, info.row_count, info.rows_added) == (0, 997, 997)
    rows = workspace.quality.quarantined("people")
    assert rows.num_rows == 3
    failed = sorted(
        (r["id"], r["score"], tuple(r["_plinth_failed_checks"])) for r in rows.to_pylist()
    )
    assert failed == [
        (5, 50.0, ("id.unique",)),
        (10, -1.0, ("score.min",)),
        (500, 101.0, ("score.max",)),
    ]
    assert set(rows.column("_plinth_ingest_id").to_pylist()) == {info.ingest_id}
    result = workspace.quality.results("people")[0]
    assert result["status"] == "quarantined"
    assert (result["rows_passed"], result["rows_warned"], result["rows_quarantined"]) == (
        997,
        1,
        3,
    )
    assert result["checks"]["rows"] == {
        "city.allowed": 1,
        "id.unique": 1,
        "score.max": 1,
        "score.min": 1,
    }
    # The quarantine is a lake table of its own, versioned like any other.
    assert workspace.lake.table("people__quarantine").latest.row_count == 3


def test_release_after_fixing_the_contract_makes_a_version_with_all_rows(workspace):
    workspace.quality.apply(CONTRACT)
    workspace.lake.ingest(thousand_rows_with_three_bad(), table="people")
    workspace.quality.apply(
        CONTRACT.replace("{min: 0, max: 100}", "{min: -10, max: 200}").replace(
            "unique: true", "unique: false"
        )
    )
    result = workspace.quality.release("people")
    assert (result.released, result.still_failing, result.table_version) == (3, 0, 1)
    assert workspace.lake.read("people").num_rows == 1000
    assert workspace.lake.version("people").row_count == 1000
    assert workspace.quality.quarantined("people").num_rows == 0
    assert workspace.lake.read("people__quarantine", version=0).num_rows == 3


def test_release_without_a_fix_keeps_failing_rows_in_quarantine(workspace):
    workspace.quality.apply(CONTRACT)
    workspace.lake.ingest(thousand_rows_with_three_bad(), table="people")
    workspace.quality.apply(CONTRACT.replace("{min: 0, max: 100}", "{min: -10, max: 100}"))
    result = workspace.quality.release("people")
    assert (result.released, result.still_failing) == (1, 2)
    left = workspace.quality.quarantined("people")
    assert sorted(c for row in left.column("_plinth_failed_checks").to_pylist() for c in row) == [
        "id.unique",
        "score.max",
    ]


def test_purge_removes_rows_but_time_travel_keeps_them(workspace):
    workspace.quality.apply(CONTRACT)
    workspace.lake.ingest(thousand_rows_with_three_bad(), table="people")
    assert workspace.quality.purge("people") == 3
    assert workspace.quality.quarantined("people").num_rows == 0
    assert workspace.lake.read("people__quarantine", version=0).num_rows == 3


def test_unique_is_checked_against_rows_already_in_the_table(workspace):
    workspace.quality.apply(CONTRACT)
    workspace.lake.ingest(
        pa.table({"id": [1, 2], "score": [1.0, 2.0], "city": ["a", "b"]}), table="people"
    )
    info = workspace.lake.ingest(
        pa.table({"id": [2, 3, 3], "score": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]}),
        table="people",
    )
    assert info.rows_added == 1
    failed = workspace.quality.quarantined("people").column("_plinth_failed_checks")
    assert failed.to_pylist() == [["id.unique"], ["id.unique"]]


def test_row_count_and_schema_rules_block_the_commit(workspace):
    workspace.quality.apply("table: t\ncolumns:\n  a: {type: int64}\nrow_count: {min: 5}\n")
    with pytest.raises(ContractViolationError, match=r"row_count.*1 rows"):
        workspace.lake.ingest(pa.table({"a": [1]}), table="t")
    with pytest.raises(TableNotFoundError):
        workspace.lake.table("t")
    assert workspace.quality.results("t")[0]["status"] == "blocked"
    with pytest.raises(ContractViolationError, match=r"schema.*'a' is string"):
        workspace.lake.ingest(pa.table({"a": ["x"] * 9}), table="t")
    assert workspace.lake.ingest(pa.table({"a": list(range(9))}), table="t").row_count == 9


def test_stale_table_trips_the_freshness_check(workspace):
    old = datetime.now(UTC) - timedelta(days=30)
    data = pa.table({"at": pa.array([old, old - timedelta(hours=1)], pa.timestamp("us", "UTC"))})
    workspace.quality.apply("table: t\nfreshness: {column: at, max_age: 7d}\n")
    with pytest.raises(ContractViolationError, match=r"freshness.*older than"):
        workspace.lake.ingest(data, table="t", timestamp="at")
    workspace.quality.apply("table: t\nfreshness: {column: at, max_age: 7d, severity: warn}\n")
    workspace.lake.ingest(data, table="t", timestamp="at")
    result = workspace.quality.results("t")[0]
    assert result["status"] == "warned"
    assert result["checks"]["table"]["freshness"]["passed"] is False
    report = check_version(workspace.quality, "t")
    assert report.status == "warned"
    assert not report.table_checks[0].passed
    from plinth.quality.observability import table_events

    kinds = [e.kind for e in table_events(workspace.lake, "t")]
    assert kinds == ["freshness_breach"]


def test_check_an_existing_version(workspace):
    workspace.lake.ingest(pa.table({"a": [1, -1, 2, None]}), table="t")
    workspace.quality.apply("table: t\ncolumns:\n  a: {min: 0, not_null: true}\n")
    report = check_version(workspace.quality, "t", version=0)
    assert report.status == "failed"
    assert report.failures == {"a.min": 1, "a.not_null": 1}
    assert report.rows_failed == 2
    stored = workspace.quality.results("t")[0]
    assert (stored["kind"], stored["status"], stored["table_version"]) == ("check", "failed", 0)


def test_check_cannot_be_evaluated_is_an_error_not_a_pass(workspace):
    workspace.quality.apply("table: t\ncolumns:\n  a: {min: 0}\n")
    with pytest.raises(ContractError, match=r"a.min.*cannot be evaluated"):
        workspace.lake.ingest(pa.table({"a": ["text"]}), table="t")


def test_contract_file_in_the_project_is_applied_on_ingest(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "t.yaml").write_text("table: t\ncolumns:\n  a: {max: 10}\n")
    info = workspace.lake.ingest(pa.table({"a": [1, 50]}), table="t")
    assert info.row_count == 1
    assert workspace.quality.contract("t").origin.endswith("t.yaml")


def test_spool_of_a_crashed_commit_is_flushed_on_open(workspace, tmp_path):
    workspace.quality.apply(CONTRACT)
    info = workspace.lake.ingest(thousand_rows_with_three_bad(), table="people")
    # Simulate a crash after the main commit: put the quarantined rows back in a spool file.
    rows = workspace.quality.quarantined("people")
    workspace.quality.purge("people")
    import pyarrow.parquet as pq

    spool = workspace.quality.spool_dir() / f"{info.ingest_id}.parquet"
    pq.write_table(rows, spool)
    workspace.quality.recover_spools()
    assert not spool.exists()
    assert workspace.quality.quarantined("people").num_rows == 3


def test_quality_results_are_json(workspace):
    workspace.quality.apply(CONTRACT)
    workspace.lake.ingest(thousand_rows_with_three_bad(), table="people")
    json.dumps(workspace.quality.results("people")[0]["checks"])
