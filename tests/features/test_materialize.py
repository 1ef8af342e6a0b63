"""Materialization, online reads with TTL, skew check, and the feature CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from plinth import Entity, FeatureService, FeatureView
from plinth.cli.main import main

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.fixture
def store(workspace):
    workspace.lake.ingest(
        pa.table(
            {
                "origin": ["JFK", "JFK", "LGA", "EWR", "JFK"],
                "carrier": ["AA", "AA", "DL", "UA", "B6"],
                "ts": pa.array(
                    [hours(1), hours(2), hours(1), hours(3), hours(2)], pa.timestamp("us", "UTC")
                ),
                "temp": [10.0, 12.0, 20.0, 30.0, 50.0],
                "label": ["a", "b", "c", "d", "e"],
            }
        ),
        table="obs",
    )
    workspace.lake.ingest(pa.table({"tailnum": ["N1", "N2"], "seats": [100, 200]}), table="planes")
    route = Entity("route", join_keys=["origin", "carrier"])
    workspace.features.apply(
        [
            FeatureView(
                "obs",
                source="obs",
                entities=[route],
                timestamp="ts",
                ttl="2h",
                features={"temp": "temp", "label": "label", "double": "temp * 2"},
            ),
            FeatureView(
                "planes",
                source="planes",
                entities=[Entity("tailnum")],
                timestamp=None,
                features=["seats"],
            ),
            FeatureService("svc", ["obs:temp", "planes"]),
        ]
    )
    return workspace


def test_materialize_writes_latest_value_per_entity(store):
    result = store.features.materialize("obs", end=hours(10))
    assert result.rows == 4
    online = store.features.online(
        [{"origin": "JFK", "carrier": "AA"}, {"origin": "EWR", "carrier": "UA"}],
        "obs",
        now=hours(3),
    )
    assert online.values[0] == {"obs__temp": 12.0, "obs__label": "b", "obs__double": 24.0}
    assert online.statuses[0]["obs__temp"] == "present"
    assert online.values[1]["obs__temp"] == 30.0


def test_online_reads_past_ttl_come_back_expired(store):
    store.features.materialize("obs", end=hours(10))
    late = store.features.online([{"origin": "JFK", "carrier": "AA"}], "obs", now=hours(4.5))
    assert late.values[0]["obs__temp"] is None
    assert late.statuses[0]["obs__temp"] == "expired"
    missing = store.features.online([{"origin": "SFO", "carrier": "AA"}], "obs", now=hours(2))
    assert missing.statuses[0]["obs__temp"] == "missing"


def test_materialization_is_incremental_from_the_watermark(store):
    first = store.features.materialize("obs", end=hours(1.5))
    assert first.rows == 2
    assert store.features.watermark("obs") == hours(1.5)
    second = store.features.materialize("obs", end=hours(10))
    assert second.start == hours(1.5)
    assert second.rows == 3
    online = store.features.online([{"origin": "JFK", "carrier": "AA"}], "obs", now=hours(2))
    assert online.values[0]["obs__temp"] == 12.0


def test_static_view_and_service(store):
    store.features.materialize("planes")
    store.features.materialize("obs", end=hours(10))
    result = store.features.online(
        [{"origin": "JFK", "carrier": "B6", "tailnum": "N2"}], "svc", now=hours(2)
    )
    assert result.values[0] == {"obs__temp": 50.0, "planes__seats": 200}


def test_skew_is_zero_after_materialization(store):
    store.features.materialize("obs", end=hours(10))
    report = store.features.skew("obs", sample=100)
    assert report.checked == 4
    assert report.mismatches == []


def test_skew_reports_entities_not_materialized(store):
    store.features.materialize("obs", end=hours(1.5))
    report = store.features.skew("obs", sample=100)
    assert any(m.get("problem") == "not in the online store" for m in report.mismatches)


def test_online_requires_the_join_keys(store):
    from plinth.errors import SchemaMismatchError

    with pytest.raises(SchemaMismatchError, match="carrier"):
        store.features.online([{"origin": "JFK"}], "obs")


def test_features_cli(tmp_path, capsys):
    home = str(tmp_path / "ws")
    csv = tmp_path / "obs.csv"
    csv.write_text("k,ts,v\n1,2024-01-01T00:00:00Z,1.5\n2,2024-01-01T01:00:00Z,2.5\n")
    assert main(["ingest", str(csv), "--table", "obs", "--home", home]) == 0
    definitions = tmp_path / "features.py"
    definitions.write_text(
        "from plinth import Entity, FeatureView\n"
        "k = Entity('k')\n"
        "obs = FeatureView('obs', source='obs', entities=[k], timestamp='ts', ttl='1d',\n"
        "                  features=['v'])\n"
    )
    assert main(["features", "apply", str(definitions), "--home", home]) == 0
    assert "view obs: v1 created" in capsys.readouterr().out
    assert main(["features", "list", "--home", home, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["kind"], d["name"]) for d in listed] == [("entity", "k"), ("view", "obs")]
    assert main(["features", "show", "obs", "--home", home]) == 0
    assert "materialized up to: never" in capsys.readouterr().out
    assert main(["features", "materialize", "--home", home]) == 0
    assert "obs: 2 entities written" in capsys.readouterr().out
    assert main(["features", "skew", "obs", "--home", home]) == 0
    assert "0 mismatches" in capsys.readouterr().out
    assert main(["features", "show", "nope", "--home", home]) == 1
