"""Observability: freshness, volume, schema changes, anomaly events, summary, report and CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

import plinth
from plinth.catalog.models import Event
from plinth.cli.observe_cmds import register
from plinth.errors import TableNotFoundError
from plinth.lake import VersionInfo
from plinth.quality.observability import (
    detect_anomalies,
    freshness,
    record_freshness_breach,
    schema_changes,
    summarize,
    volume,
)
from plinth.quality.report import render_html, write_html

START = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Any]:
    workspace = plinth.Workspace(settings=plinth.Settings(home=tmp_path / "ws", user="tester"))
    yield workspace
    workspace.close()


def _events(ws: Any) -> list[tuple[str, str]]:
    with ws.catalog.session() as session:
        rows = session.scalars(select(Event).order_by(Event.id)).all()
        return [(r.kind, r.subject_id) for r in rows]


def _stamped(n: int, hours: int = 0) -> pa.Table:
    at = [START + timedelta(hours=hours + i) for i in range(n)]
    return pa.table(
        {"v": np.arange(n, dtype=np.float64), "at": pa.array(at, pa.timestamp("us", tz="UTC"))}
    )


# -- freshness and volume --------------------------------------------------------------------


def test_freshness_is_the_age_of_the_newest_timestamp(ws):
    ws.lake.ingest(_stamped(10), table="t", timestamp="at")
    ws.lake.ingest(_stamped(5, hours=100), table="t")
    now = START + timedelta(hours=110)
    fresh = freshness(ws.lake, "t", now=now)
    assert fresh is not None
    assert fresh.column == "at" and fresh.version == 1
    assert fresh.newest == START + timedelta(hours=104)
    assert fresh.age == timedelta(hours=6)


def test_freshness_is_none_without_a_timestamp_column(ws):
    ws.lake.ingest(pa.table({"v": [1, 2]}), table="t")
    assert freshness(ws.lake, "t") is None
    assert record_freshness_breach(ws.lake, "t", timedelta(seconds=1)) is None
    with pytest.raises(TableNotFoundError):
        freshness(ws.lake, "missing")


def test_freshness_breach_is_recorded_once(workspace):
    workspace.lake.ingest(_stamped(3), table="t", timestamp="at")
    late = START + timedelta(days=3)
    assert record_freshness_breach(workspace.lake, "t", timedelta(days=7), now=late) is None
    event = record_freshness_breach(workspace.lake, "t", timedelta(days=1), now=late)
    assert event is not None
    assert event.kind == "freshness_breach" and event.subject_id == "t@0"
    assert event.severity == "warn" and event.message.endswith(".")
    assert event.details["age_seconds"] == pytest.approx(
        (timedelta(days=3, hours=-2)).total_seconds()
    )
    again = record_freshness_breach(workspace.lake, "t", timedelta(days=1), now=late)
    assert again is not None and again.id == event.id
    assert _events(workspace).count(("freshness_breach", "t@0")) == 1


def test_volume_lists_every_version(ws):
    ws.lake.ingest(_stamped(4), table="t")
    ws.lake.ingest(_stamped(6), table="t")
    points = volume(ws.lake, "t")
    assert [(p.version, p.row_count) for p in points] == [(0, 4), (1, 10)]
    assert points[0].created_at <= points[1].created_at


# -- schema changes and anomalies ------------------------------------------------------------


def test_schema_changes_between_consecutive_versions(ws):
    ws.lake.ingest(pa.table({"a": [1]}), table="t")
    ws.lake.ingest(pa.table({"a": [2]}), table="t")
    ws.lake.ingest(pa.table({"a": [3], "b": ["x"]}), table="t", evolve=True)
    (change,) = schema_changes(ws.lake, "t")
    assert (change.from_version, change.to_version) == (1, 2)
    assert change.added == [{"name": "b", "type": "string", "nullable": True}]
    assert change.removed == [] and change.changed == []
    assert change.describe() == "Version 2 of t added column b (string) since version 1."


@dataclass
class _FakeLake:
    versions: list[VersionInfo]

    def history(self, name: str) -> list[VersionInfo]:
        return self.versions


def _version(number: int, schema: dict[str, str]) -> VersionInfo:
    return VersionInfo(
        table="t",
        version=number,
        operation="overwrite",
        row_count=1,
        rows_added=1,
        bytes=1,
        num_files=1,
        schema=[{"name": k, "type": v, "nullable": True} for k, v in schema.items()],
        source={},
        ingest_id=None,
        created_at=START,
        created_by="tester",
    )


def test_schema_changes_report_removed_and_retyped_columns():
    lake = _FakeLake(
        [
            _version(0, {"a": "int64", "b": "string"}),
            _version(1, {"a": "double", "c": "bool"}),
        ]
    )
    (change,) = schema_changes(lake, "t")  # type: ignore[arg-type]
    assert [c["name"] for c in change.added] == ["c"]
    assert [c["name"] for c in change.removed] == ["b"]
    assert change.changed == [{"name": "a", "from": "int64", "to": "double"}]
    assert "removed column b" in change.describe()
    assert "a (int64 to double)" in change.describe()


def test_volume_drop_and_schema_change_events_are_recorded_once(workspace):
    workspace.lake.ingest(pa.table({"a": list(range(100))}), table="t")
    workspace.lake.ingest(
        pa.table({"a": list(range(30)), "b": ["x"] * 30}),
        table="t",
        mode="overwrite",
        evolve=True,
    )
    first = detect_anomalies(workspace.lake, "t", 1)
    again = detect_anomalies(workspace.lake, "t", 1)
    assert sorted(e.kind for e in first) == ["schema_change", "volume_drop"]
    assert sorted(e.id for e in first) == sorted(e.id for e in again)
    events = _events(workspace)
    assert events.count(("volume_drop", "t@1")) == 1
    assert events.count(("schema_change", "t@1")) == 1
    drop = next(e for e in first if e.kind == "volume_drop")
    assert drop.subject_kind == "table_version" and drop.severity == "warn"
    assert drop.details["previous_rows"] == 100 and drop.details["rows"] == 30
    assert "fell by 70%" in drop.message and drop.message.endswith(".")


def test_no_anomalies_for_a_first_or_steady_version(ws):
    ws.lake.ingest(pa.table({"a": list(range(100))}), table="t")
    ws.lake.ingest(pa.table({"a": list(range(60))}), table="t", mode="overwrite")
    assert detect_anomalies(ws.lake, "t", 0) == []
    assert detect_anomalies(ws.lake, "t", 1) == []  # a 40% drop is within the 50% allowed
    assert [e.kind for e in detect_anomalies(ws.lake, "t", 1, volume_drop=0.3)] == ["volume_drop"]


# -- summary, report and CLI -----------------------------------------------------------------


def _wide(n: int, shift: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(15):
        columns[f"num_{i:02d}"] = rng.normal(shift * (i % 3), 1.0, n)
    columns["color"] = rng.choice(["red", "green", "blue"], n)
    columns["code"] = [f"SECRET-{seed}-{j:07d}" for j in range(n)]
    columns["flag"] = rng.random(n) < 0.3
    columns["count"] = rng.integers(0, 1000, n)
    columns["at"] = pa.array(
        [START + timedelta(minutes=j) for j in range(n)], pa.timestamp("us", tz="UTC")
    )
    return pa.table(columns)


@pytest.fixture(scope="module")
def wide_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("wide") / "ws"
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as ws:
        ws.lake.ingest(_wide(100_000, 0.0, 1), table="t", timestamp="at")
        ws.lake.ingest(_wide(100_000, 0.8, 2), table="t", mode="overwrite")
    return home


def test_summary_compares_with_the_previous_version(wide_home):
    with plinth.Workspace(settings=plinth.Settings(home=wide_home, user="tester")) as ws:
        summary = summarize(ws.lake, "t")
        pinned = summarize(ws.lake, "t", against=1, version=1)
    assert summary.version == 1 and summary.reference_version == 0
    assert summary.row_count == 100_000 and len(summary.volume) == 2
    assert summary.freshness is not None and summary.freshness.column == "at"
    assert len(summary.shifts) == 20
    psis = [s.psi for s in summary.shifts if s.psi is not None]
    assert psis == sorted(psis, reverse=True)
    assert summary.shifts[0].psi > 0.25 and summary.shifts[0].column.startswith("num_")
    assert all(s.psi == pytest.approx(0, abs=1e-12) for s in pinned.shifts)


def test_summary_of_a_single_version_has_no_reference(ws):
    ws.lake.ingest(_stamped(5), table="t")
    summary = summarize(ws.lake, "t")
    assert summary.reference_version is None
    # The only version is compared with itself, so its distributions can be drawn.
    assert summary.shifts and all(s.psi == 0 for s in summary.shifts if s.psi is not None)
    page = render_html(summary)
    assert "nothing to compare with" in page and page.count("<svg") >= 2


def test_html_report_is_small_self_contained_and_hides_high_cardinality_values(wide_home, tmp_path):
    with plinth.Workspace(settings=plinth.Settings(home=wide_home, user="tester")) as ws:
        summary = summarize(ws.lake, "t")
    path = write_html(summary, tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 3
    assert len(page.encode()) < 300_000
    assert "SECRET-" not in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "num_00" in page and "color" in page


def test_html_report_escapes_text(ws):
    ws.lake.ingest(pa.table({"label": ["<b>a</b>"] * 5 + ["plain"] * 5}), table="t")
    ws.lake.ingest(
        pa.table({"label": ["<script>x</script>"] * 5 + ["plain"] * 5}), table="t", mode="overwrite"
    )
    page = render_html(summarize(ws.lake, "t"), title="<i>report</i>")
    assert "<script>" not in page and "<b>a</b>" not in page and "<i>report" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "&lt;i&gt;report" in page


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_quality_prints_pillars_and_writes_html(wide_home, tmp_path):
    out = tmp_path / "out.html"
    result = CliRunner().invoke(
        _app(), ["quality", "t", "--html", str(out), "--home", str(wide_home)]
    )
    assert result.exit_code == 0, result.output
    assert "t@1: 100,000 rows, compared with version 0" in result.output
    assert "freshness: newest at is" in result.output
    assert "volume" in result.output and "top shifts" in result.output
    assert str(out) in result.output.replace("\n", "")
    assert "<svg" in out.read_text(encoding="utf-8")


def test_cli_quality_against_a_chosen_version(wide_home):
    result = CliRunner().invoke(
        _app(), ["quality", "t", "--against", "1", "--version", "1", "--home", str(wide_home)]
    )
    assert result.exit_code == 0, result.output
    assert "version 1 → 1" in result.output


def test_cli_profile_json_and_table(wide_home):
    runner = CliRunner()
    result = runner.invoke(
        _app(), ["profile", "t", "--version", "0", "--json", "--home", str(wide_home)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["version"] == 0 and data["row_count"] == 100_000
    assert data["columns"]["color"]["kind"] == "categorical"
    result = runner.invoke(_app(), ["profile", "t", "--home", str(wide_home)])
    assert result.exit_code == 0, result.output
    assert "t@1: 100,000 rows" in result.output
    assert "mostly" in result.output and "SECRET-" not in result.output  # ids are not listed


def test_cli_unknown_table_raises_a_plinth_error(tmp_path):
    result = CliRunner().invoke(_app(), ["quality", "nope", "--home", str(tmp_path / "ws")])
    assert isinstance(result.exception, TableNotFoundError)
