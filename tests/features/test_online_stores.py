"""Conformance suite of the online stores: SQLite always, Redis against a real server.

Every backend must keep the newest row per entity, never let an older write win, enforce the
TTL on read, compare keys with their Python types and answer in the order of the request.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from plinth.errors import ConfigError, SchemaMismatchError, StorageError
from plinth.features.online import (
    EXPIRED,
    MISSING,
    PRESENT,
    OnlineRow,
    OnlineStore,
    SQLiteOnlineStore,
    open_online_store,
)
from plinth.features.online import base as online_base

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    """The instant ``hours`` after T0."""
    return T0 + timedelta(hours=hours)


def stamps(*hours: float) -> pa.Array:
    """An Arrow UTC timestamp column at the given hours after T0."""
    return pa.array([at(h) for h in hours], pa.timestamp("us", "UTC"))


def weather(origins: list[str], hours: list[float], temps: list[float | None]) -> pa.Table:
    """A small single-key table: origin, ts, temp."""
    return pa.table({"origin": pa.array(origins, pa.string()), "ts": stamps(*hours), "temp": temps})


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    """An empty online store on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'online.db'}"
    else:
        url = request.getfixturevalue("redis_db_url")
    opened = open_online_store(url)
    try:
        yield opened
    finally:
        opened.close()


def one(store: OnlineStore, view: str, entity: tuple, features: list[str], **kw) -> OnlineRow:
    """Read a single entity."""
    kw.setdefault("ttl", None)
    (row,) = store.read(view, [entity], features, **kw)
    return row


# -- round trips -------------------------------------------------------------------------------


def test_round_trip_keeps_values_and_types(store: OnlineStore) -> None:
    data = pa.table(
        {
            "id": [1, 2],
            "ts": stamps(1, 2),
            "n": pa.array([7, -(2**62)], pa.int64()),
            "small": pa.array([3, None], pa.int8()),
            "big": pa.array([2**64 - 1, 0], pa.uint64()),
            "x": [0.1, float("inf")],
            "x32": pa.array([1.5, None], pa.float32()),
            "s": ['quote " back \\ pipe | nl \n tab \t', "日本 ✈ \x01"],
            "flag": [True, False],
            "nothing": pa.nulls(2),
            "maybe": pa.array([None, "x"], pa.string()),
            "when": stamps(5, 6),
            "naive": pa.array([datetime(2024, 5, 1, 12), None], pa.timestamp("ns")),
            "day": pa.array([date(2024, 2, 29), date(1969, 7, 20)]),
            "price": pa.array([Decimal("12.34"), None], pa.decimal128(10, 2)),
            "raw": pa.array([b"\x00\xff|", b""]),
            "tags": pa.array([["a", "b"], []]),
            "cat": pa.array(["red", "blue"]).dictionary_encode(),
        }
    )
    features = [n for n in data.column_names if n not in ("id", "ts")]
    assert store.write("types", ["id"], data, timestamp="ts") == 2
    first, second = store.read("types", [(1,), (2,)], features, ttl=None)
    assert first.values == {
        "n": 7,
        "small": 3,
        "big": 2**64 - 1,
        "x": 0.1,
        "x32": 1.5,
        "s": 'quote " back \\ pipe | nl \n tab \t',
        "flag": True,
        "nothing": None,
        "maybe": None,
        "when": at(5),
        "naive": datetime(2024, 5, 1, 12),
        "day": date(2024, 2, 29),
        "price": Decimal("12.34"),
        "raw": b"\x00\xff|",
        "tags": ["a", "b"],
        "cat": "red",
    }
    assert set(first.statuses.values()) == {PRESENT}  # a stored null is present, not missing
    assert first.event_timestamp == at(1)
    assert first.event_timestamp.tzinfo is not None
    assert type(first.values["x"]) is float and type(first.values["n"]) is int
    assert first.values["when"].tzinfo is not None and first.values["naive"].tzinfo is None
    assert second.values["x"] == float("inf")
    assert second.values["small"] is None and second.values["x32"] is None
    assert second.values["s"] == "日本 ✈ \x01"
    assert second.values["day"] == date(1969, 7, 20)
    assert second.values["raw"] == b""
    assert second.values["tags"] == []
    assert second.event_timestamp == at(2)


def test_floats_come_back_as_floats(store: OnlineStore) -> None:
    values = [1.0, -0.0, 1e20, 2.0**63, 5e-324, float("-inf")]
    data = pa.table({"k": list(range(len(values))), "ts": stamps(*[0] * len(values)), "x": values})
    store.write("v", ["k"], data, timestamp="ts")
    rows = store.read("v", [(i,) for i in range(len(values))], ["x"], ttl=None)
    assert [r.values["x"] for r in rows] == values
    assert all(type(r.values["x"]) is float for r in rows)


def test_nan_round_trips(store: OnlineStore) -> None:
    store.write(
        "v", ["k"], pa.table({"k": ["a"], "ts": stamps(0), "x": [float("nan")]}), timestamp="ts"
    )
    value = one(store, "v", ("a",), ["x"]).values["x"]
    assert value != value


def test_naive_and_other_zone_event_times_are_utc(store: OnlineStore) -> None:
    naive = pa.array([datetime(2024, 1, 1, 3)], pa.timestamp("ns"))
    store.write("naive", ["k"], pa.table({"k": ["a"], "ts": naive, "x": [1]}), timestamp="ts")
    assert one(store, "naive", ("a",), ["x"]).event_timestamp == at(3)
    zoned = pa.array([at(4)], pa.timestamp("ms", "America/New_York"))
    store.write("zoned", ["k"], pa.table({"k": ["a"], "ts": zoned, "x": [1]}), timestamp="ts")
    assert one(store, "zoned", ("a",), ["x"]).event_timestamp == at(4)


def test_multi_key_entities(store: OnlineStore) -> None:
    data = pa.table(
        {
            "origin": ["JFK", "JFK", "LGA"],
            "tailnum": ["N1", "N2", "N1"],
            "ts": stamps(1, 1, 1),
            "delay": [5, 10, 15],
        }
    )
    assert store.write("route", ["origin", "tailnum"], data, timestamp="ts") == 3
    rows = store.read("route", [("JFK", "N2"), ("LGA", "N1"), ("LGA", "N2")], ["delay"], ttl=None)
    assert [r.values["delay"] for r in rows] == [10, 15, None]
    assert rows[2].statuses == {"delay": MISSING}


def test_key_parts_cannot_run_into_each_other(store: OnlineStore) -> None:
    data = pa.table({"a": ["ab", "a"], "b": ["c", "bc"], "ts": stamps(1, 1), "v": [1, 2]})
    store.write("pairs", ["a", "b"], data, timestamp="ts")
    rows = store.read("pairs", [("ab", "c"), ("a", "bc"), ("abc", "")], ["v"], ttl=None)
    assert [r.values["v"] for r in rows] == [1, 2, None]


def test_key_type_matters(store: OnlineStore) -> None:
    store.write("ints", ["k"], pa.table({"k": [1], "ts": stamps(1), "v": ["int"]}), timestamp="ts")
    store.write(
        "strs", ["k"], pa.table({"k": ["1"], "ts": stamps(1), "v": ["str"]}), timestamp="ts"
    )
    store.write(
        "floats", ["k"], pa.table({"k": [1.0], "ts": stamps(1), "v": ["f"]}), timestamp="ts"
    )
    assert one(store, "ints", (1,), ["v"]).values["v"] == "int"
    assert one(store, "ints", ("1",), ["v"]).statuses["v"] == MISSING
    assert one(store, "ints", (1.0,), ["v"]).statuses["v"] == MISSING
    assert one(store, "ints", (True,), ["v"]).statuses["v"] == MISSING
    assert one(store, "strs", ("1",), ["v"]).values["v"] == "str"
    assert one(store, "strs", (1,), ["v"]).statuses["v"] == MISSING
    assert one(store, "floats", (1.0,), ["v"]).values["v"] == "f"
    assert one(store, "floats", (1,), ["v"]).statuses["v"] == MISSING


def test_other_key_types(store: OnlineStore) -> None:
    data = pa.table(
        {
            "flag": [True, False],
            "day": pa.array([date(2024, 1, 1), date(2024, 1, 2)]),
            "when": stamps(1, 2),
            "small": pa.array([1, 2], pa.int16()),
            "ts": stamps(1, 1),
            "v": ["a", "b"],
        }
    )
    store.write("typed", ["flag", "day", "when", "small"], data, timestamp="ts")
    naive_when = datetime(2024, 1, 1, 2)  # naive key values are taken as UTC
    rows = store.read(
        "typed",
        [(False, date(2024, 1, 2), naive_when, 2), (True, date(2024, 1, 1), at(1), 1)],
        ["v"],
        ttl=None,
    )
    assert [r.values["v"] for r in rows] == ["b", "a"]


# -- newest wins -------------------------------------------------------------------------------


def test_newest_row_wins_within_one_write(store: OnlineStore) -> None:
    data = weather(["JFK", "JFK", "LGA", "JFK", "LGA"], [1, 3, 2, 2, 2], [10, 30, 20, 20, 21])
    assert store.write("w", ["origin"], data, timestamp="ts") == 2
    jfk, lga = store.read("w", [("JFK",), ("LGA",)], ["temp"], ttl=None)
    assert (jfk.values["temp"], jfk.event_timestamp) == (30, at(3))
    assert lga.values["temp"] == 21  # equal times: the later row wins


def test_older_write_never_overwrites_newer(store: OnlineStore) -> None:
    newer = weather(["JFK", "LGA"], [5, 5], [50, 55])
    mixed = weather(["JFK", "LGA"], [4, 6], [40, 66])
    assert store.write("w", ["origin"], newer, timestamp="ts") == 2
    assert store.write("w", ["origin"], mixed, timestamp="ts") == 1  # only LGA is newer
    jfk, lga = store.read("w", [("JFK",), ("LGA",)], ["temp"], ttl=None)
    assert (jfk.values["temp"], jfk.event_timestamp) == (50, at(5))
    assert (lga.values["temp"], lga.event_timestamp) == (66, at(6))


def test_writes_are_idempotent_and_order_independent(store: OnlineStore) -> None:
    early = weather(["JFK", "LGA"], [1, 3], [1.0, 3.0])
    late = weather(["JFK", "LGA"], [2, 2], [2.0, 2.5])
    for view, batches in (("ab", [early, late, late]), ("ba", [late, early, early])):
        for batch in batches:
            store.write(view, ["origin"], batch, timestamp="ts")
    entities = [("JFK",), ("LGA",)]
    assert store.read("ab", entities, ["temp"], ttl=None) == store.read(
        "ba", entities, ["temp"], ttl=None
    )
    assert [r.values["temp"] for r in store.read("ab", entities, ["temp"], ttl=None)] == [2.0, 3.0]


def test_newer_row_replaces_the_feature_set(store: OnlineStore) -> None:
    store.write("w", ["origin"], weather(["JFK"], [1], [1.0]), timestamp="ts")
    newer = pa.table({"origin": ["JFK"], "ts": stamps(2), "wind": [9]})
    store.write("w", ["origin"], newer, timestamp="ts")
    row = one(store, "w", ("JFK",), ["temp", "wind"])
    assert row.values == {"temp": None, "wind": 9}
    assert row.statuses == {"temp": MISSING, "wind": PRESENT}


# -- missing, TTL, order -----------------------------------------------------------------------


def test_missing_entity_and_view_are_missing(store: OnlineStore) -> None:
    store.write("w", ["origin"], weather(["JFK"], [1], [1.0]), timestamp="ts")
    for view in ("w", "never_written"):
        row = one(store, view, ("SFO",), ["temp", "wind"])
        assert row.values == {"temp": None, "wind": None}
        assert row.statuses == {"temp": MISSING, "wind": MISSING}
        assert row.event_timestamp is None


def test_unknown_feature_is_missing(store: OnlineStore) -> None:
    store.write("w", ["origin"], weather(["JFK"], [1], [1.0]), timestamp="ts")
    row = one(store, "w", ("JFK",), ["temp", "nope"])
    assert row.values == {"temp": 1.0, "nope": None}
    assert row.statuses == {"temp": PRESENT, "nope": MISSING}


def test_ttl_expires_on_read(store: OnlineStore) -> None:
    store.write("w", ["origin"], weather(["JFK", "LGA"], [1, 3], [1.0, 3.0]), timestamp="ts")
    ttl = timedelta(hours=2)
    jfk, lga = store.read("w", [("JFK",), ("LGA",)], ["temp", "nope"], ttl=ttl, now=at(4))
    assert jfk.values == {"temp": None, "nope": None}
    assert jfk.statuses == {"temp": EXPIRED, "nope": MISSING}
    assert jfk.event_timestamp == at(1)
    assert lga.values["temp"] == 3.0 and lga.statuses["temp"] == PRESENT
    boundary = one(store, "w", ("JFK",), ["temp"], ttl=ttl, now=at(3))
    assert boundary.statuses["temp"] == PRESENT  # exactly ttl old is still fresh
    naive_now = datetime(2024, 1, 1, 3, 0, 0, 1)  # naive: taken as UTC
    assert one(store, "w", ("JFK",), ["temp"], ttl=ttl, now=naive_now).statuses == {"temp": EXPIRED}
    other_zone = at(3).astimezone(timezone(timedelta(hours=-5)))
    assert one(store, "w", ("JFK",), ["temp"], ttl=ttl, now=other_zone).values["temp"] == 1.0


def test_ttl_none_never_expires(store: OnlineStore) -> None:
    store.write("w", ["origin"], weather(["JFK"], [1], [1.0]), timestamp="ts")
    far = datetime(2999, 1, 1, tzinfo=UTC)
    assert one(store, "w", ("JFK",), ["temp"], ttl=None, now=far).values["temp"] == 1.0
    assert one(store, "w", ("JFK",), ["temp"], ttl=None).statuses["temp"] == PRESENT


def test_results_follow_the_request_order_with_duplicates(store: OnlineStore) -> None:
    store.write(
        "w", ["origin"], weather(["JFK", "LGA", "EWR"], [1, 1, 1], [1, 2, 3]), timestamp="ts"
    )
    request = [("EWR",), ("SFO",), ("JFK",), ("EWR",), ("LGA",), ("JFK",)]
    rows = store.read("w", request, ["temp"], ttl=None)
    assert [r.values["temp"] for r in rows] == [3, None, 1, 3, 2, 1]
    rows[0].values["temp"] = 99  # rows of repeated entities do not share their dicts
    assert rows[3].values["temp"] == 3
    assert store.read("w", [], ["temp"], ttl=None) == []


# -- administration ----------------------------------------------------------------------------


def test_views_count_and_delete_view(store: OnlineStore) -> None:
    assert store.views() == [] and store.count("w") == 0
    store.write(
        "w", ["origin"], weather(["JFK", "LGA", "JFK"], [1, 1, 2], [1, 2, 3]), timestamp="ts"
    )
    store.write("other", ["origin"], weather(["JFK"], [1], [1]), timestamp="ts")
    assert store.views() == ["other", "w"]
    assert store.count("w") == 2 and store.count("other") == 1
    store.delete_view("w")
    assert store.views() == ["other"]
    assert store.count("w") == 0
    assert one(store, "w", ("JFK",), ["temp"]).statuses == {"temp": MISSING}
    assert one(store, "other", ("JFK",), ["temp"]).values == {"temp": 1}
    store.delete_view("w")  # deleting again is fine
    store.write(
        "w",
        ["origin", "carrier"],
        pa.table({"origin": ["JFK"], "carrier": ["AA"], "ts": stamps(1), "temp": [4]}),
        timestamp="ts",
    )  # a deleted view may come back with other keys
    assert one(store, "w", ("JFK", "AA"), ["temp"]).values == {"temp": 4}


def test_keys_of_a_view_cannot_change(store: OnlineStore) -> None:
    store.write("w", ["origin"], weather(["JFK"], [1], [1]), timestamp="ts")
    data = pa.table({"origin": ["JFK"], "carrier": ["AA"], "ts": stamps(1), "temp": [1]})
    with pytest.raises(SchemaMismatchError, match="delete_view"):
        store.write("w", ["origin", "carrier"], data, timestamp="ts")


def test_large_write_then_spot_reads(store: OnlineStore) -> None:
    rows = 10_000
    data = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": [f"entity-{i}" for i in range(rows)],
            "ts": pa.array([at(i % 24) for i in range(rows)], pa.timestamp("us", "UTC")),
            "x": [i * 0.5 for i in range(rows)],
            "label": [f"L{i % 7}" for i in range(rows)],
        }
    )
    assert store.write("big", ["id", "name"], data, timestamp="ts") == rows
    assert store.count("big") == rows
    picks = [0, 1, 4_999, 9_998, 9_999]
    found = store.read("big", [(i, f"entity-{i}") for i in picks], ["x", "label"], ttl=None)
    assert [r.values for r in found] == [{"x": i * 0.5, "label": f"L{i % 7}"} for i in picks]
    assert [r.event_timestamp for r in found] == [at(i % 24) for i in picks]
    many = store.read("big", [(i, f"entity-{i}") for i in range(0, rows, 7)], ["x"], ttl=None)
    assert all(r.values["x"] == i * 0.5 for r, i in zip(many, range(0, rows, 7), strict=True))
    assert store.write("big", ["id", "name"], data, timestamp="ts") == rows  # same times: kept


def test_batched_write_keeps_newest_across_batch_edges(
    store: OnlineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(online_base, "BATCH_ROWS", 3)  # many batches, encoded in a thread
    names = [f"e{i % 5}" for i in range(40)]  # each entity 8 times, runs cross batch edges
    hours = [(i * 7) % 11 for i in range(40)]
    data = pa.table({"e": names, "ts": stamps(*hours), "v": list(range(40))})
    assert store.write("w", ["e"], data, timestamp="ts") == 5
    expected = {}
    for i, (name, hour) in enumerate(zip(names, hours, strict=True)):
        if name not in expected or hour >= expected[name][0]:
            expected[name] = (hour, i)
    rows = store.read("w", [(f"e{i}",) for i in range(5)], ["v"], ttl=None)
    assert [(r.event_timestamp, r.values["v"]) for r in rows] == [
        (at(expected[f"e{i}"][0]), expected[f"e{i}"][1]) for i in range(5)
    ]
    big = pa.table({"e": [f"x{i}" for i in range(50)], "ts": stamps(*[1] * 50), "v": [1] * 50})
    store.write("w2", ["e"], big, timestamp="ts")
    with pytest.raises(SchemaMismatchError):  # fails after the encoding thread started
        store.write("w2", ["e", "v"], big, timestamp="ts")
    assert store.count("w2") == 50
    assert not [t for t in threading.enumerate() if t.name == "plinth-online-encode"]


def test_empty_write(store: OnlineStore) -> None:
    assert store.write("w", ["origin"], weather([], [], []), timestamp="ts") == 0
    assert store.count("w") == 0


# -- bad input ---------------------------------------------------------------------------------


def test_bad_writes_are_explained(store: OnlineStore) -> None:
    good = weather(["JFK"], [1], [1.0])
    with pytest.raises(SchemaMismatchError, match="lacks column"):
        store.write("w", ["origin"], good, timestamp="time")
    with pytest.raises(SchemaMismatchError, match="not a timestamp"):
        store.write("w", ["origin"], good, timestamp="temp")
    with pytest.raises(SchemaMismatchError, match="null"):
        store.write("w", ["origin"], weather([None], [1], [1.0]), timestamp="ts")  # type: ignore[list-item]
    nulls = pa.table({"origin": ["JFK"], "ts": pa.array([None], pa.timestamp("us")), "t": [1]})
    with pytest.raises(SchemaMismatchError, match="event-time"):
        store.write("w", ["origin"], nulls, timestamp="ts")
    for bad_view in ("", "has space", "x:y", "a*", "1abc"):
        with pytest.raises(ConfigError, match="not valid"):
            store.write(bad_view, ["origin"], good, timestamp="ts")
        with pytest.raises(ConfigError, match="not valid"):
            store.read(bad_view, [("JFK",)], ["temp"], ttl=None)
    with pytest.raises(SchemaMismatchError, match="key value"):
        store.read("w", [(object(),)], ["temp"], ttl=None)
    assert store.views() == []


@pytest.mark.parametrize(
    "url",
    ["ftp://host/x", "mysql://db/x", "sqlite://host/x.db", "sqlite:///:memory:", "", "s3://b/x"],
)
def test_bad_urls_raise_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        open_online_store(url)


def test_plain_paths_open_sqlite(tmp_path: Path) -> None:
    for url in (tmp_path / "a.db", str(tmp_path / "sub" / "b.db"), f"file://{tmp_path}/c.db"):
        with open_online_store(url) as opened:
            assert isinstance(opened, SQLiteOnlineStore)


def test_missing_redis_package_asks_for_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError, match="'redis' extra"):
        open_online_store("redis://127.0.0.1:6379/0")


def test_unreachable_redis_names_the_url_without_password() -> None:
    pytest.importorskip("redis")
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    with pytest.raises(StorageError) as caught:
        open_online_store(url)
    assert f"redis://:***@127.0.0.1:{port}/0" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match=r"junk\.db"):
        open_online_store(tmp_path / "junk.db")
    with pytest.raises(StorageError):
        open_online_store(tmp_path)  # a folder


def test_closed_sqlite_store_refuses_work(tmp_path: Path) -> None:
    opened = open_online_store(tmp_path / "o.db")
    opened.close()
    opened.close()
    with pytest.raises(StorageError, match="closed"):
        opened.views()


# -- SQLite specifics --------------------------------------------------------------------------


def test_sqlite_file_is_shared_between_store_objects(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    with open_online_store(path) as writer, open_online_store(f"sqlite:///{path}") as reader:
        writer.write("w", ["origin"], weather(["JFK"], [1], [1.5]), timestamp="ts")
        assert one(reader, "w", ("JFK",), ["temp"]).values == {"temp": 1.5}
        assert reader.views() == ["w"]
        mode = reader._connection().execute("PRAGMA journal_mode").fetchone()[0]  # type: ignore[attr-defined]
        assert mode == "wal"


def test_sqlite_concurrent_writers_and_readers(tmp_path: Path) -> None:
    """Two writers (one behind in time) and two readers share one store object."""
    store = open_online_store(tmp_path / "online.db")
    entities = [f"E{i}" for i in range(200)]
    rounds = 15
    errors: list[BaseException] = []
    seen: list[list[datetime | None]] = []

    def batch(hour: float) -> pa.Table:
        n = len(entities)
        return pa.table({"e": entities, "ts": stamps(*[hour] * n), "v": [float(hour)] * n})

    def writer(hours: list[float]) -> None:
        try:
            for hour in hours:
                store.write("w", ["e"], batch(hour), timestamp="ts")
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        last: list[datetime | None] = []
        try:
            for _ in range(rounds * 4):
                rows = store.read("w", [(e,) for e in entities], ["v"], ttl=None)
                stamps_now = [r.event_timestamp for r in rows]
                for before, after in zip(last, stamps_now, strict=False):
                    assert before is None or (after is not None and after >= before)
                for r in rows:
                    if r.event_timestamp is not None:
                        assert r.values["v"] == (r.event_timestamp - T0).total_seconds() / 3600
                last = stamps_now
            seen.append(last)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=([float(h) for h in range(rounds, 2 * rounds)],)),
        threading.Thread(target=writer, args=([float(h) for h in range(rounds)],)),
        threading.Thread(target=reader),
        threading.Thread(target=reader),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not errors, errors
        final = store.read("w", [(e,) for e in entities], ["v"], ttl=None)
        assert {r.values["v"] for r in final} == {float(2 * rounds - 1)}
        assert store.count("w") == len(entities)
    finally:
        store.close()


def test_sqlite_writes_are_visible_at_commit_and_checkpointed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    writer = SQLiteOnlineStore(path)
    writer.write("weather", ["origin"], weather(["JFK"], [1], [5.0]), timestamp="ts")
    reader = SQLiteOnlineStore(path)  # another store, as a serving process would open
    assert one(reader, "weather", ("JFK",), ["temp"]).values == {"temp": 5.0}
    reader.close()
    writer.close()
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    again = SQLiteOnlineStore(path)
    assert again.count("weather") == 1
    again.close()


def test_sqlite_store_creates_its_file_with_wide_pages(tmp_path: Path) -> None:
    import sqlite3

    from plinth.features.online.sqlite import PAGE_SIZE

    path = tmp_path / "online.db"
    SQLiteOnlineStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16_384
    # A file made with other pages keeps them and stays usable.
    old = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(old)) as connection:
        connection.execute("PRAGMA page_size = 4096")
        connection.execute("CREATE TABLE t (a)")
    store = SQLiteOnlineStore(old)
    store.write("weather", ["origin"], weather(["JFK"], [1], [5.0]), timestamp="ts")
    assert one(store, "weather", ("JFK",), ["temp"]).values == {"temp": 5.0}
    store.close()
    with contextlib.closing(sqlite3.connect(old)) as connection:
        assert connection.execute("PRAGMA page_size").fetchone()[0] == 4096
