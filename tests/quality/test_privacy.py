"""Personal data never shows in profiles, reports, datasheets or quarantine views."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select

import plinth
from plinth.catalog.models import AuditEvent, Profile
from plinth.cli.main import main
from plinth.quality.privacy import PROFILE_KEPT, WITHHELD, is_withheld, sanitize_profile
from plinth.quality.profiles import compute_profile, get_profile, profile_version

EMAILS = [f"person{i % 4}@example.org" for i in range(40)]
BORN = datetime(1961, 3, 14, tzinfo=UTC)
#: Raw values of the marked columns, and text they would be shown as.
SECRETS = ("example.org", "person0", "1961", "4711")
CONTRACT = """\
table: people
columns:
  email: {pii: hash}
  born: {pii: drop}
  salary: {pii: true}
  age: {min: 0}
"""


def _people(seed: int = 0) -> pa.Table:
    return pa.table(
        {
            "email": EMAILS,
            "born": pa.array(
                [BORN + timedelta(days=i + seed) for i in range(40)], pa.timestamp("us", "UTC")
            ),
            "salary": [4711.0 + i for i in range(40)],
            "age": [20 + (i + seed) % 30 for i in range(40)],
            "city": ["lyon" if i % 2 else "oslo" for i in range(40)],
        }
    )


@pytest.fixture(autouse=True)
def _user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI runs as the same user as the workspaces the tests open."""
    monkeypatch.setenv("PLINTH_USER", "tester")


def _settings(tmp_path: Path) -> plinth.Settings:
    return plinth.Settings(home=tmp_path / "ws", user="tester")


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def _stored_json(ws: plinth.Workspace, table: str) -> str:
    with ws.catalog.session() as session:
        rows = session.scalars(select(Profile).where(Profile.table_name == table)).all()
        assert rows
        return json.dumps([row.columns for row in rows], default=str)


def test_sanitize_keeps_counts_only_and_marks_the_column():
    profile = compute_profile(_people())
    clean = sanitize_profile(profile, ["email", "born", "salary"])
    for name in ("email", "born", "salary"):
        entry = clean["columns"][name]
        assert is_withheld(entry)
        assert set(entry) <= {*PROFILE_KEPT, "pii"}
        assert entry["count"] == 40 and entry["nulls"] == 0
    assert clean["columns"]["city"] == profile["columns"]["city"]
    assert not is_withheld(clean["columns"]["age"])
    _assert_no_secret(json.dumps(clean["columns"]["email"], default=str))
    assert "top" in profile["columns"]["email"]  # the input is left alone


def test_profiles_of_marked_columns_hold_no_values(tmp_path):
    from plinth.governance.datasheet import build_datasheet
    from plinth.quality.observability import summarize
    from plinth.quality.report import render_html

    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        ws.quality.apply(CONTRACT)
        ws.lake.ingest(_people(), table="people")
        ws.lake.ingest(_people(seed=3), table="people")
        profile = profile_version(ws.lake, "people", 1)
        stored = _stored_json(ws, "people")
        assert "lyon" in stored and '"pii": true' in stored
        _assert_no_secret(stored)
        _assert_no_secret(json.dumps(profile, default=str))
        assert profile["columns"]["email"]["distinct"] == 4
        summary = summarize(ws.lake, "people")
        assert {s.column for s in summary.shifts} == {"age", "city"}
        assert summary.withheld == ["email", "born", "salary"]
        page = render_html(summary)
        _assert_no_secret(page)
        assert WITHHELD.capitalize() + ": email, born, salary" in page
        sheet = build_datasheet(ws, "people", 1).markdown()
        _assert_no_secret(sheet)
        assert sheet.count(WITHHELD) == 3 and "lyon" in sheet


def test_a_profile_stored_before_the_column_was_marked_is_withheld(tmp_path):
    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        ws.lake.ingest(_people(), table="people")
        before = profile_version(ws.lake, "people", 0)
        assert before["columns"]["email"]["top"][0]["value"].endswith("example.org")
        # A profile written behind the contract's back (an older Plinth, a copy) is
        # sanitized when read, with the table's current contract.
        ws.quality.apply("table: people\ncolumns:\n  age: {min: 0}\n")
        ws.quality.apply(CONTRACT)
        with ws.catalog.session() as session:
            row = session.scalar(select(Profile).where(Profile.table_name == "people"))
            row.columns = before["columns"]
        read = get_profile(ws.catalog, "people", 0)
        assert read is not None and is_withheld(read["columns"]["email"])
        _assert_no_secret(json.dumps(read, default=str))
        _assert_no_secret(json.dumps(profile_version(ws.lake, "people", 0), default=str))
        assert read["columns"]["city"]["top"]


def test_marking_a_column_scrubs_the_stored_profiles(tmp_path):
    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        ws.lake.ingest(_people(), table="people")
        profile_version(ws.lake, "people", 0)
        assert "example.org" in _stored_json(ws, "people")
        ws.quality.apply(CONTRACT)
        _assert_no_secret(_stored_json(ws, "people"))


def _call(app: Any, *paths: str) -> list[str]:
    import httpx

    async def run() -> list[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get(p)).text for p in paths]

    return asyncio.run(run())


def test_cli_api_and_dashboard_show_withheld(tmp_path, capsys):
    from plinth.server.app import create_app

    home = str(tmp_path / "ws")
    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        ws.lake.ingest(_people(), table="people")
        profile_version(ws.lake, "people", 0)
        ws.quality.apply(CONTRACT)
        api, page = _call(create_app(ws), "/api/v1/tables/people/profile", "/ui/tables/people")
    assert json.loads(api)["columns"]["email"]["pii"] is True
    _assert_no_secret(api)
    _assert_no_secret(page)
    assert WITHHELD in page
    for args in (["--json"], []):
        assert main(["profile", "people", "--home", home, *args]) == 0
        out = capsys.readouterr().out
        _assert_no_secret(out)
    assert "withheld" in out


# -- quarantine --------------------------------------------------------------------------------

QUARANTINE_CONTRACT = """\
table: people
columns:
  email: {pii: hash}
  salary: {pii: drop}
  age: {min: 18}
"""


def _quarantine(tmp_path: Path) -> str:
    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        ws.quality.apply(QUARANTINE_CONTRACT)
        rows = _people().select(["email", "salary", "age"])
        ages = [5 if i < 2 else a for i, a in enumerate(rows.column("age").to_pylist())]
        ws.lake.ingest(rows.set_column(2, "age", pa.array(ages)), table="people")
        assert ws.quality.quarantined("people").num_rows == 2
    return str(tmp_path / "ws")


def _events(tmp_path: Path, action: str) -> list[AuditEvent]:
    with plinth.Workspace(settings=_settings(tmp_path)) as ws, ws.catalog.session() as session:
        found = session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()
        session.expunge_all()
        return list(found)


def test_quarantine_show_masks_personal_data_by_default(tmp_path, capsys):
    from plinth.governance.pii import hash_value, hashing_secret

    home = _quarantine(tmp_path)
    assert main(["quarantine", "show", "people", "--home", home, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 2 and data["masked"] == {"email": "hash", "salary": "drop"}
    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        secret = hashing_secret(ws)
    assert [r["email"] for r in data["rows"]] == [hash_value(e, secret) for e in EMAILS[:2]]
    assert [r["salary"] for r in data["rows"]] == ["***", "***"]
    assert [r["age"] for r in data["rows"]] == [5, 5]
    assert main(["quarantine", "show", "people", "--home", home]) == 0
    out = capsys.readouterr().out
    _assert_no_secret(out)
    assert "***" in out and "Add --reveal" in out
    assert not _events(tmp_path, "quarantine.reveal")


def test_reveal_shows_raw_values_and_is_audited(tmp_path, capsys):
    home = _quarantine(tmp_path)
    assert main(["quarantine", "show", "people", "--home", home, "--json", "--reveal"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["email"] for r in data["rows"]] == EMAILS[:2]
    assert [r["salary"] for r in data["rows"]] == [4711.0, 4712.0]
    [event] = _events(tmp_path, "quarantine.reveal")
    assert (event.actor, event.resource) == ("tester", "table:people")
    assert event.details["columns"] == ["email", "salary"] and event.details["rows"] == 2


def test_reveal_is_refused_to_a_viewer(tmp_path, capsys):
    from plinth.governance import roles

    home = _quarantine(tmp_path)
    with plinth.Workspace(settings=_settings(tmp_path)) as ws, ws.catalog.session() as session:
        roles.bind(session, subject="tester", role="viewer", project="default", actor="admin")
    code = main(["quarantine", "show", "people", "--home", home, "--reveal"])
    out, err = capsys.readouterr()
    assert code != 0
    message = out + err
    assert "may not reveal the personal data" in message and "tables:write" in message
    assert "Traceback" not in message
    _assert_no_secret(message)
    assert len(_events(tmp_path, "quarantine.reveal_denied")) == 1
    assert not _events(tmp_path, "quarantine.reveal")
    # Masked rows are still there for a viewer.
    assert main(["quarantine", "show", "people", "--home", home]) == 0
    assert "***" in capsys.readouterr().out


def test_the_profile_of_a_quarantine_table_withholds_its_tables_personal_data(tmp_path):
    _quarantine(tmp_path)
    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        profile = profile_version(ws.lake, "people__quarantine", 0)
    assert is_withheld(profile["columns"]["email"]) and is_withheld(profile["columns"]["salary"])
    _assert_no_secret(json.dumps(profile, default=str))


def test_release_writes_the_raw_values_back(tmp_path, capsys):
    home = _quarantine(tmp_path)
    assert main(["quarantine", "show", "people", "--home", home]) == 0
    capsys.readouterr()
    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        ws.quality.apply(QUARANTINE_CONTRACT.replace("min: 18", "min: 0"))
        result = ws.quality.release("people")
        assert result.released == 2
        data = ws.lake.read("people")
    assert sorted(data.column("email").to_pylist()) == sorted(EMAILS)
    assert sorted(data.column("salary").to_pylist()) == [4711.0 + i for i in range(40)]


@pytest.mark.parametrize("reveal", [False, True])
def test_view_of_an_empty_quarantine(tmp_path, reveal):
    with plinth.Workspace(settings=_settings(tmp_path)) as ws:
        ws.quality.apply(QUARANTINE_CONTRACT)
        ws.lake.ingest(_people().select(["email", "salary", "age"]), table="people")
        view = ws.quality.view_quarantined("people", reveal=reveal)
    assert (view.total, view.rows.num_rows, view.revealed) == (0, 0, reveal)
