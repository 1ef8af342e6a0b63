"""The audit chain: appends in the change's transaction, verification names the first bad event."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import plinth
from plinth.catalog.audit import GENESIS, events, head, record, verify


@pytest.fixture
def ws(tmp_path):
    with plinth.Workspace(settings=plinth.Settings(home=tmp_path / "ws", user="ana")) as w:
        yield w


def _append(ws, n: int) -> None:
    for i in range(n):
        with ws.catalog.session() as s:
            record(
                s,
                actor="ana",
                action="model.alias",
                resource=f"model:m{i}",
                details={"alias": "champion", "version": i, "note": "é"},
            )


def test_chain_links_and_verifies(ws):
    assert verify(ws).ok and head(ws)["hash"] == GENESIS
    _append(ws, 5)
    result = verify(ws)
    assert result.ok and result.events == 5
    newest = events(ws, limit=1)[0]
    assert head(ws) == {"seq": 5, "hash": newest.hash, "at": newest.at.isoformat()}
    assert [e.seq for e in events(ws, resource="model:m3")] == [4]


def test_rolled_back_change_leaves_no_event(ws):
    with pytest.raises(RuntimeError), ws.catalog.session() as s:
        record(s, actor="ana", action="x", resource="r")
        raise RuntimeError("the change failed")
    assert verify(ws).events == 0


@pytest.mark.parametrize(
    ("tamper", "bad", "why"),
    [
        ('UPDATE audit_events SET details = \'{"alias": "x"}\' WHERE seq = 3', 3, "details"),
        ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2", 2, "actor"),
        ("DELETE FROM audit_events WHERE seq = 3", 3, "missing"),
        ("UPDATE audit_events SET seq = seq + 100 WHERE seq = 2", 2, "missing"),
    ],
)
def test_tampering_is_found_and_named(ws, tamper, bad, why):
    _append(ws, 5)
    with ws.catalog.engine.begin() as conn:
        conn.execute(text(tamper))
    result = verify(ws)
    assert not result.ok and result.first_bad == bad and why in result.reason


def test_swapped_events_and_a_deleted_tail_against_an_anchor(ws):
    _append(ws, 4)
    anchor = head(ws)
    with ws.catalog.engine.begin() as conn:
        rows = conn.execute(text("SELECT seq, details FROM audit_events ORDER BY seq")).all()
        conn.execute(text("UPDATE audit_events SET details = :d WHERE seq = 2"), {"d": rows[2][1]})
        conn.execute(text("UPDATE audit_events SET details = :d WHERE seq = 3"), {"d": rows[1][1]})
    assert verify(ws).first_bad == 2
    with ws.catalog.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET details = :d WHERE seq = 2"), {"d": rows[1][1]})
        conn.execute(text("UPDATE audit_events SET details = :d WHERE seq = 3"), {"d": rows[2][1]})
        conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    assert verify(ws).ok  # a shorter chain is consistent on its own ...
    lost = verify(ws, anchor=anchor)  # ... but not against the exported head
    assert not lost.ok and lost.first_bad == 4 and "gone" in lost.reason
