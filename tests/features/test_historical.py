"""Point-in-time training sets: a brute-force oracle, explicit cases, lineage and bad input.

The oracle below is written from the documented semantics of ``historical()``: for each spine
row and each view, among the source rows with equal (non-null) join keys and a non-null event
time at or before the spine's, take the newest; ties go to the newest ``created`` (nulls
last), then to the smallest tuple of selected feature values (nulls last). A row older than
the view's TTL (strictly) yields nulls. Static views take, per key, the newest ``created``
(nulls last), then the smallest feature tuple. The output keeps the spine's rows and order.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plinth
from plinth import Entity, FeatureService, FeatureView
from plinth.catalog.lineage import Node, walk
from plinth.catalog.models import TrainingSet
from plinth.errors import NotFoundError, PlinthError, SchemaMismatchError, SourceError
from plinth.quality.contracts import parse_duration

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
NAIVE = pa.timestamp("us")


def at(hours: float, *, aware: bool = True) -> datetime:
    """``T0`` plus some hours, time-zone aware (UTC) or naive."""
    moment = T0 + timedelta(hours=hours)
    return moment if aware else moment.replace(tzinfo=None)


def open_workspace(home: Path) -> plinth.Workspace:
    """An embedded (SQLite + local files) workspace under ``home``."""
    return plinth.Workspace(settings=plinth.Settings(home=home / "ws", user="tester"))


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[plinth.Workspace]:
    """An embedded workspace, for tests that need only one backend."""
    workspace = open_workspace(tmp_path)
    yield workspace
    workspace.close()


# -- the oracle ----------------------------------------------------------------------------


def _nulls_last(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple((v is None, 0 if v is None else v) for v in values)


def _newest_created_first(created: datetime | None) -> tuple[bool, float]:
    return (created is None, 0.0 if created is None else -created.timestamp())


def oracle(
    source: list[dict[str, Any]],
    spine: list[dict[str, Any]],
    *,
    keys: Sequence[str],
    features: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]],
    timestamp: str | None,
    created: str | None,
    ttl: timedelta | None,
    event: str = "event_timestamp",
) -> list[tuple[Any, ...]]:
    """Each spine row's feature tuple, by brute force over the source rows."""

    def values(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(fn(row) for _, fn in features)

    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        stamp = row[created] if created else None
        return (_newest_created_first(stamp), _nulls_last(values(row)))

    missing = tuple(None for _ in features)
    out = []
    for target in spine:
        if any(target[k] is None for k in keys):
            out.append(missing)
            continue
        rows = [r for r in source if all(r[k] is not None and r[k] == target[k] for k in keys)]
        if timestamp is not None:
            moment = target[event]
            if moment is None:
                out.append(missing)
                continue
            rows = [r for r in rows if r[timestamp] is not None and r[timestamp] <= moment]
            if rows:
                newest = max(r[timestamp] for r in rows)
                rows = [r for r in rows if r[timestamp] == newest]
        if not rows:
            out.append(missing)
            continue
        chosen = min(rows, key=order)
        if timestamp is not None and ttl is not None and target[event] - chosen[timestamp] > ttl:
            out.append(missing)
            continue
        out.append(values(chosen))
    return out


def test_oracle_breaks_ties_by_created_then_feature_values() -> None:
    source = [
        {"k": 1, "ts": at(1), "c": None, "v": 0.0},
        {"k": 1, "ts": at(1), "c": at(0), "v": 5.0},
        {"k": 1, "ts": at(1), "c": at(0), "v": 3.0},
        {"k": 1, "ts": at(0), "c": at(9), "v": 1.0},
    ]
    spine = [{"k": 1, "event_timestamp": at(2)}, {"k": 1, "event_timestamp": at(0)}]
    got = oracle(
        source,
        spine,
        keys=["k"],
        features=[("v", lambda r: r["v"])],
        timestamp="ts",
        created="c",
        ttl=None,
    )
    assert got == [(3.0,), (1.0,)]


# -- the property test (embedded backend) --------------------------------------------------

K1 = st.sampled_from([0, 1, 2, 3, None])
K2 = st.sampled_from(["a", "b", None])
HOURS = st.sampled_from([0, 1, 2, 3, None])
CREATED = st.sampled_from([None, 0, 1])
VALUES = st.sampled_from([1.0, 2.0, None])
KEYS = st.tuples(K1, K2)
EVENTS = st.sampled_from([None, *range(0, 11)])  # half hours, so TTL boundaries are hit


@st.composite
def rows(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Source and spine rows over a small pool of keys, so that keys and times often tie."""
    pool = draw(st.lists(KEYS, min_size=1, max_size=4))
    source = draw(
        st.lists(
            st.tuples(st.sampled_from(pool), HOURS, CREATED, VALUES, VALUES),
            min_size=1,
            max_size=30,
        )
    )
    spine = draw(
        st.lists(st.tuples(st.one_of(st.sampled_from(pool), KEYS), EVENTS), min_size=1, max_size=20)
    )
    return source, spine


SELECTIONS = st.sampled_from([("f", "neg"), ("neg", "f"), ("f",), ("neg",)])
TTLS = st.sampled_from([None, "30m", "1h", "2h"])

VIEW_FEATURES = {"f": "v", "neg": "-w"}
PY_FEATURES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "f": lambda r: r["v"],
    "neg": lambda r: None if r["w"] is None else -r["w"],
    "sf": lambda r: r["v"],
    "sw": lambda r: r["w"],
}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    drawn=rows(),
    selected=SELECTIONS,
    ttl=TTLS,
    use_created=st.booleans(),
    aware=st.booleans(),
)
def test_historical_matches_brute_force_oracle(
    tmp_path_factory: pytest.TempPathFactory,
    drawn: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
    selected: tuple[str, ...],
    ttl: str | None,
    use_created: bool,
    aware: bool,
) -> None:
    source_rows, spine_rows = drawn
    stamp = TS if aware else NAIVE
    source = [
        {
            "k1": k1,
            "k2": k2,
            "ts": None if h is None else at(h, aware=aware),
            "created": None if c is None else at(c, aware=aware),
            "v": v,
            "w": w,
        }
        for (k1, k2), h, c, v, w in source_rows
    ]
    events = [None if e is None else e / 2 for _, e in spine_rows]
    if all(e is None for e in events):
        events[0] = 1.0  # an all-null event column is covered by its own test below
    spine = [
        {
            "id": i,
            "k1": k1,
            "k2": k2,
            "event_timestamp": None if e is None else at(e, aware=aware),
        }
        for i, (((k1, k2), _), e) in enumerate(zip(spine_rows, events, strict=True))
    ]
    workspace = open_workspace(tmp_path_factory.mktemp("pit"))
    try:
        workspace.lake.ingest(
            pa.Table.from_pylist(
                source,
                schema=pa.schema(
                    [
                        ("k1", pa.int64()),
                        ("k2", pa.string()),
                        ("ts", stamp),
                        ("created", stamp),
                        ("v", pa.float64()),
                        ("w", pa.float64()),
                    ]
                ),
            ),
            table="src",
        )
        key = Entity("key", join_keys=["k1", "k2"])
        created = "created" if use_created else None
        workspace.features.apply(
            [
                FeatureView(
                    "fv",
                    source="src",
                    entities=[key],
                    timestamp="ts",
                    created_timestamp=created,
                    ttl=ttl,
                    features=VIEW_FEATURES,
                ),
                FeatureView(
                    "st",
                    source="src",
                    entities=[key],
                    timestamp=None,
                    created_timestamp=created,
                    features={"sf": "v", "sw": "w"},
                ),
            ]
        )
        spine_table = pa.Table.from_pylist(
            spine,
            schema=pa.schema(
                [
                    ("id", pa.int64()),
                    ("k1", pa.int64()),
                    ("k2", pa.string()),
                    ("event_timestamp", stamp),
                ]
            ),
        )
        result = workspace.features.historical(
            spine_table, [*(f"fv:{f}" for f in selected), "st"], record=False
        )
    finally:
        workspace.close()

    names = [*(f"fv__{f}" for f in selected), "st__sf", "st__sw"]
    assert result.table.column_names == [*spine_table.column_names, *names]
    assert result.table.select(spine_table.column_names).equals(spine_table)
    common = {"source": source, "spine": spine, "keys": ["k1", "k2"], "created": created}
    temporal = oracle(
        **common,
        features=[(f, PY_FEATURES[f]) for f in selected],
        timestamp="ts",
        ttl=parse_duration(ttl) if ttl else None,
    )
    static = oracle(
        **common,
        features=[(f, PY_FEATURES[f]) for f in ("sf", "sw")],
        timestamp=None,
        ttl=None,
    )
    got = list(zip(*(result.table.column(n).to_pylist() for n in names), strict=True))
    expected = [t + s for t, s in zip(temporal, static, strict=True)]
    assert got == expected


# -- explicit cases ------------------------------------------------------------------------


def _ingest_obs(workspace: Any, aware: bool = True) -> None:
    stamp = TS if aware else NAIVE
    workspace.lake.ingest(
        pa.table(
            {
                "k1": pa.array([1, 1, 1, 2, 2, None], pa.int64()),
                "k2": ["a", "a", "a", "a", "b", "a"],
                "ts": pa.array([at(h, aware=aware) for h in (0, 2, 4, 1, 1, 0)], stamp),
                "v": [10.0, 12.0, 14.0, 20.0, 30.0, 99.0],
                "label": ["p", "q", "r", "s", "t", "u"],
            }
        ),
        table="obs",
    )


def _apply_obs(workspace: Any, ttl: str | None = None) -> Entity:
    key = Entity("key", join_keys=["k1", "k2"])
    workspace.features.apply(
        [
            FeatureView(
                "fv",
                source="obs",
                entities=[key],
                timestamp="ts",
                ttl=ttl,
                features={"f": "v", "label": "label", "twice": "v * 2"},
            )
        ]
    )
    return key


def _spine(rows: list[tuple[Any, Any, float | None]], aware: bool = True) -> pa.Table:
    return pa.table(
        {
            "k1": pa.array([r[0] for r in rows], pa.int64()),
            "k2": pa.array([r[1] for r in rows], pa.string()),
            "event_timestamp": pa.array(
                [None if r[2] is None else at(r[2], aware=aware) for r in rows],
                TS if aware else NAIVE,
            ),
        }
    )


def test_spine_rows_order_duplicates_and_null_keys_are_kept(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws)
    rows = [
        (1, "a", 3),
        (None, "a", 3),
        (1, "a", 3),
        (2, "b", 0.5),
        (1, None, 5),
        (2, "b", 1),
        (1, "a", 3),
        (1, "a", 10),
        (3, "a", 3),
    ]
    spine = _spine(rows)
    result = ws.features.historical(spine, ["fv"], record=False)
    assert result.table.num_rows == len(rows)
    assert result.table.select(spine.column_names).equals(spine)
    assert result.table.column("fv__f").to_pylist() == [
        12.0,
        None,
        12.0,
        None,
        None,
        30.0,
        12.0,
        14.0,
        None,
    ]
    assert result.table.column("fv__label").to_pylist()[7] == "r"
    assert result.table.column("fv__twice").to_pylist()[0] == 24.0
    assert result.features == ["fv__f", "fv__label", "fv__twice"]


def test_two_views_and_a_static_view_in_one_call(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    ws.lake.ingest(
        pa.table(
            {
                "k1": pa.array([1, 2, 1], pa.int64()),
                "ts": pa.array([at(1), at(1), at(3)], TS),
                "score": [0.5, 0.7, 0.9],
            }
        ),
        table="scores",
    )
    ws.lake.ingest(
        pa.table(
            {
                "k2": ["a", "b", "a"],
                "updated": pa.array([at(0), at(0), at(50)], TS),
                "name": ["alpha", "beta", "alpha2"],
            }
        ),
        table="labels",
    )
    key = _apply_obs(ws)
    ws.features.apply(
        [
            FeatureView(
                "scores",
                source="scores",
                entities=[Entity("one", join_keys=["k1"])],
                timestamp="ts",
                ttl="1h",
                features=["score"],
            ),
            FeatureView(
                "labels",
                source="labels",
                entities=[Entity("two", join_keys=["k2"])],
                timestamp=None,
                created_timestamp="updated",
                features={"name": "name", "shout": "upper(name)"},
            ),
        ]
    )
    assert key.join_keys == ("k1", "k2")
    spine = _spine([(1, "a", 2), (2, "b", 1.5), (1, "a", 3.5), (2, None, 9)])
    result = ws.features.historical(spine, ["fv:f", "scores", "labels"], record=False)
    table = result.table
    assert table.column_names == [
        "k1",
        "k2",
        "event_timestamp",
        "fv__f",
        "scores__score",
        "labels__name",
        "labels__shout",
    ]
    assert table.column("fv__f").to_pylist() == [12.0, 30.0, 12.0, None]
    assert table.column("scores__score").to_pylist() == [0.5, 0.7, 0.9, None]
    # Static views ignore event time: the newest 'updated' row wins even in the future.
    assert table.column("labels__name").to_pylist() == ["alpha2", "beta", "alpha2", None]
    assert table.column("labels__shout").to_pylist() == ["ALPHA2", "BETA", "ALPHA2", None]
    assert set(result.inputs["tables"]) == {"obs", "scores", "labels"}
    assert result.inputs["views"] == {"fv": 1, "scores": 1, "labels": 1}


@pytest.mark.parametrize("aware", [True, False], ids=["utc", "naive"])
def test_ttl_boundary_exactly_equal_to_ttl_is_fresh(ws: plinth.Workspace, aware: bool) -> None:
    ws.lake.ingest(
        pa.table(
            {
                "k": pa.array([1, 2], pa.int64()),
                "ts": pa.array([at(0, aware=aware), at(0, aware=aware)], TS if aware else NAIVE),
                "v": [1.0, 2.0],
            }
        ),
        table="src",
    )
    ws.features.apply(
        [
            FeatureView("hourly", source="src", entities=[Entity("k")], timestamp="ts", ttl="2h",
                        features=["v"]),
            FeatureView("daily", source="src", entities=[Entity("k")], timestamp="ts", ttl="1d",
                        features=["v"]),
        ]
    )  # fmt: skip
    micro = timedelta(microseconds=1)
    hour = timedelta(hours=1)
    events = [2 * hour, 2 * hour + micro, 2 * hour - micro, 24 * hour, 24 * hour + micro]
    events += [25 * hour, 0 * hour, -micro]
    spine = pa.table(
        {
            "k": pa.array([1] * len(events), pa.int64()),
            "event_timestamp": pa.array(
                [at(0, aware=aware) + e for e in events], TS if aware else NAIVE
            ),
        }
    )
    table = ws.features.historical(spine, ["hourly", "daily"], record=False).table
    assert table.column("hourly__v").to_pylist() == [1.0, None, 1.0, None, None, None, 1.0, None]
    assert table.column("daily__v").to_pylist() == [1.0, 1.0, 1.0, 1.0, None, None, 1.0, None]


def test_service_with_a_subset_of_features(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws)
    ws.features.apply([FeatureService("svc", ["fv:twice", "fv:f"])])
    spine = _spine([(1, "a", 1), (2, "a", 5)])
    by_name = ws.features.historical(spine, "svc", record=False)
    assert by_name.table.column_names == ["k1", "k2", "event_timestamp", "fv__twice", "fv__f"]
    assert by_name.table.column("fv__twice").to_pylist() == [20.0, 40.0]
    assert by_name.table.column("fv__f").to_pylist() == [10.0, 20.0]
    inline = ws.features.historical(spine, FeatureService("adhoc", ["fv:label"]), record=False)
    assert inline.table.column_names == ["k1", "k2", "event_timestamp", "fv__label"]
    assert inline.table.column("fv__label").to_pylist() == ["p", "s"]


def _training_set_checks(workspace: Any, result: Any, table_version: str) -> None:
    assert result.id is not None and result.ref == f"training_set:{result.id}"
    with workspace.catalog.session() as session:
        row = session.get(TrainingSet, result.id)
        assert row is not None
        assert row.row_count == result.table.num_rows
        assert row.features == result.features
        assert row.inputs == result.inputs
        digest = row.artifact_digest
        edges = walk(session, Node("training_set", result.id), "up")
    stored = pq.read_table(io.BytesIO(workspace.artifacts.get_bytes(digest)))
    assert stored.equals(result.table)
    reached = {(e.source.kind, e.source.id) for e in edges}
    assert ("table_version", table_version) in reached
    assert ("feature_view", "fv@1") in reached


def test_lineage_of_a_recorded_training_set(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws)
    spine = _spine([(1, "a", 3), (2, "b", 2), (None, None, 2)])
    result = ws.features.historical(spine, ["fv"])
    assert result.inputs == {"tables": {"obs": 0}, "views": {"fv": 1}}
    _training_set_checks(ws, result, "obs@0")
    unrecorded = ws.features.historical(spine, ["fv"], record=False)
    assert unrecorded.id is None and unrecorded.ref is None
    assert unrecorded.table.equals(result.table)


def test_a_lake_table_spine_is_linked_as_spine_of(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws)
    ws.lake.ingest(_spine([(1, "a", 3), (2, "b", 2)]), table="events")
    result = ws.features.historical("events@0", ["fv"])
    assert result.table.column("fv__f").to_pylist() == [12.0, 30.0]
    with ws.catalog.session() as session:
        edges = walk(session, Node("training_set", result.id), "up")
    assert ("table_version", "events@0", "spine_of") in {
        (e.source.kind, e.source.id, e.relation) for e in edges
    }


def test_the_table_version_used_is_the_latest_at_call_time(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws)
    spine = _spine([(1, "a", 10)])
    first = ws.features.historical(spine, ["fv"])
    assert first.inputs["tables"] == {"obs": 0}
    assert first.table.column("fv__f").to_pylist() == [14.0]
    ws.lake.ingest(
        pa.table(
            {
                "k1": pa.array([1], pa.int64()),
                "k2": ["a"],
                "ts": pa.array([at(5)], TS),
                "v": [15.0],
                "label": ["later"],
            }
        ),
        table="obs",
    )
    second = ws.features.historical(spine, ["fv"])
    assert second.inputs["tables"] == {"obs": 1}
    assert second.table.column("fv__f").to_pylist() == [15.0]
    _training_set_checks(ws, second, "obs@1")
    # The first training set still names the version it read, and its stored data is unchanged.
    _training_set_checks(ws, first, "obs@0")
    with ws.catalog.session() as session:
        assert session.get(TrainingSet, first.id).inputs["tables"] == {"obs": 0}


def test_pandas_and_polars_spines(ws: plinth.Workspace) -> None:
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    _ingest_obs(ws)
    _apply_obs(ws, ttl="3h")
    frame = {"k1": [1, 2], "k2": ["a", "b"], "event_timestamp": [at(3), at(2)]}
    from_pandas = ws.features.historical(pd.DataFrame(frame), ["fv:f"], record=False)
    from_polars = ws.features.historical(pl.DataFrame(frame), ["fv:f"], record=False)
    assert from_pandas.table.column("fv__f").to_pylist() == [12.0, 30.0]
    assert from_polars.table.column("fv__f").to_pylist() == [12.0, 30.0]


def test_a_date_spine_against_a_naive_source(ws: plinth.Workspace) -> None:
    _ingest_obs(ws, aware=False)
    _apply_obs(ws)
    spine = pa.table(
        {
            "k1": pa.array([1, 1], pa.int64()),
            "k2": ["a", "a"],
            "day": pa.array([datetime(2024, 1, 1).date(), datetime(2024, 1, 2).date()]),
        }
    )
    table = ws.features.historical(spine, ["fv:f"], timestamp="day", record=False).table
    assert table.column("fv__f").to_pylist() == [10.0, 14.0]


def test_null_event_times_without_ttl_give_null_features(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws)
    table = ws.features.historical(_spine([(1, "a", None), (1, "a", None)]), ["fv"]).table
    assert table.num_rows == 2
    assert table.column("fv__f").to_pylist() == [None, None]


def test_null_event_times_with_ttl_give_null_features(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws, ttl="2h")
    table = ws.features.historical(_spine([(1, "a", None), (1, "a", None)]), ["fv"]).table
    assert table.column("fv__f").to_pylist() == [None, None]


def test_an_empty_spine_with_ttl_gives_an_empty_training_set(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws, ttl="2h")
    table = ws.features.historical(_spine([]), ["fv"], record=False).table
    assert table.num_rows == 0
    assert "fv__f" in table.column_names


def test_an_empty_spine_without_ttl_gives_an_empty_training_set(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws)
    table = ws.features.historical(_spine([]), ["fv"], record=False).table
    assert table.num_rows == 0
    assert table.column_names[-3:] == ["fv__f", "fv__label", "fv__twice"]


def test_a_nanosecond_spine_against_a_ttl_view(ws: plinth.Workspace) -> None:
    _ingest_obs(ws)
    _apply_obs(ws, ttl="2h")
    spine = _spine([(1, "a", 3)]).cast(
        pa.schema(
            [
                ("k1", pa.int64()),
                ("k2", pa.string()),
                ("event_timestamp", pa.timestamp("ns", "UTC")),
            ]
        )
    )
    table = ws.features.historical(spine, ["fv:f"], record=False).table
    assert table.column("fv__f").to_pylist() == [12.0]


def test_ties_break_on_feature_values_even_when_a_feature_shadows_a_column(
    ws: plinth.Workspace,
) -> None:
    ws.lake.ingest(
        pa.table(
            {
                "k": pa.array([1, 1, 1], pa.int64()),
                "ts": pa.array([at(0)] * 3, TS),
                "v": [1.0, 3.0, 2.0],
            }
        ),
        table="src",
    )
    ws.features.apply(
        [FeatureView("neg", source="src", entities=[Entity("k")], timestamp="ts",
                     features={"v": "-v"})]
    )  # fmt: skip
    spine = pa.table({"k": pa.array([1], pa.int64()), "event_timestamp": pa.array([at(1)], TS)})
    table = ws.features.historical(spine, ["neg"], record=False).table
    assert table.column("neg__v").to_pylist() == [-3.0]


def test_a_sub_second_ttl_is_not_truncated(ws: plinth.Workspace) -> None:
    ws.lake.ingest(
        pa.table({"k": pa.array([1], pa.int64()), "ts": pa.array([at(0)], TS), "v": [1.0]}),
        table="src",
    )
    ws.features.apply(
        [FeatureView("fast", source="src", entities=[Entity("k")], timestamp="ts",
                     ttl=timedelta(milliseconds=1500), features=["v"])]
    )  # fmt: skip
    moment = at(0) + timedelta(milliseconds=1200)
    spine = pa.table({"k": pa.array([1], pa.int64()), "event_timestamp": pa.array([moment], TS)})
    table = ws.features.historical(spine, ["fast"], record=False).table
    assert table.column("fast__v").to_pylist() == [1.0]


# -- bad input -----------------------------------------------------------------------------


@pytest.fixture
def obs_ws(ws: plinth.Workspace) -> plinth.Workspace:
    """An embedded workspace with the tz-aware 'obs' table and the 'fv' view applied."""
    _ingest_obs(ws)
    _apply_obs(ws)
    return ws


BAD_INPUTS: list[tuple[str, Callable[[], Any], Any, type[PlinthError], tuple[str, ...]]] = [
    (
        "no-event-column",
        lambda: _spine([(1, "a", 1)]).rename_columns(["k1", "k2", "when"]),
        ["fv"],
        SchemaMismatchError,
        ("event_timestamp",),
    ),
    (
        "event-not-a-timestamp",
        lambda: pa.table({"k1": [1], "k2": ["a"], "event_timestamp": ["2024-01-01"]}),
        ["fv"],
        SchemaMismatchError,
        ("event_timestamp", "timestamp"),
    ),
    (
        "no-join-key",
        lambda: _spine([(1, "a", 1)]).drop_columns(["k2"]),
        ["fv"],
        SchemaMismatchError,
        ("k2", "fv"),
    ),
    (
        "join-key-type",
        lambda: pa.table({"k1": ["1"], "k2": ["a"], "event_timestamp": pa.array([at(1)], TS)}),
        ["fv"],
        SchemaMismatchError,
        ("k1",),
    ),
    (
        "naive-spine-aware-source",
        lambda: _spine([(1, "a", 1)], aware=False),
        ["fv"],
        SchemaMismatchError,
        ("naive", "obs.ts"),
    ),
    ("unknown-view", lambda: _spine([(1, "a", 1)]), ["nope"], NotFoundError, ("nope",)),
    ("unknown-service", lambda: _spine([(1, "a", 1)]), "nosvc", NotFoundError, ("nosvc",)),
    ("unknown-feature", lambda: _spine([(1, "a", 1)]), ["fv:nope"], NotFoundError, ("nope", "fv")),
    ("spine-type-list", lambda: [{"k1": 1}], ["fv"], SourceError, ("list",)),
    ("spine-type-dict", lambda: {"k1": [1]}, ["fv"], SourceError, ("dict",)),
    ("spine-missing-table", lambda: "ghost", ["fv"], NotFoundError, ("ghost",)),
    (
        "spine-has-output-column",
        lambda: _spine([(1, "a", 1)]).append_column("fv__f", pa.array([0.0])),
        ["fv"],
        SchemaMismatchError,
        ("fv__f",),
    ),
]


@pytest.mark.parametrize(
    ("spine", "features", "error", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_raises_a_plinth_error_naming_the_problem(
    obs_ws: plinth.Workspace,
    spine: Callable[[], Any],
    features: Any,
    error: type[PlinthError],
    words: tuple[str, ...],
) -> None:
    with pytest.raises(error) as caught:
        obs_ws.features.historical(spine(), features)
    for word in words:
        assert word in str(caught.value)
    with obs_ws.catalog.session() as session:
        assert session.query(TrainingSet).count() == 0


def test_an_aware_spine_against_a_naive_source_is_refused(ws: plinth.Workspace) -> None:
    _ingest_obs(ws, aware=False)
    _apply_obs(ws)
    with pytest.raises(SchemaMismatchError, match="time-zone aware") as caught:
        ws.features.historical(_spine([(1, "a", 1)]), ["fv"])
    assert "obs.ts" in str(caught.value) and "naive" in str(caught.value)


def test_the_time_zone_error_names_the_spines_own_column(obs_ws: plinth.Workspace) -> None:
    spine = _spine([(1, "a", 1)], aware=False).rename_columns(["k1", "k2", "when"])
    with pytest.raises(SchemaMismatchError) as caught:
        obs_ws.features.historical(spine, ["fv"], timestamp="when")
    assert "'when'" in str(caught.value)
    assert "__plinth" not in str(caught.value)


def test_a_custom_event_column_name(obs_ws: plinth.Workspace) -> None:
    spine = _spine([(1, "a", 1), (1, "a", 2)]).rename_columns(["k1", "k2", "when"])
    result = obs_ws.features.historical(spine, ["fv:f"], timestamp="when", record=False)
    assert result.table.column_names == ["k1", "k2", "when", "fv__f"]
    assert result.table.column("fv__f").to_pylist() == [10.0, 12.0]


# -- both backends -------------------------------------------------------------------------


def test_point_in_time_join_and_lineage_on_each_backend(workspace: Any) -> None:
    _ingest_obs(workspace)
    _apply_obs(workspace, ttl="2h")
    spine = _spine([(1, "a", 3), (1, "a", 4.5), (None, "a", 1), (2, "b", 1), (1, "a", 3)])
    result = workspace.features.historical(spine, ["fv"])
    assert result.table.select(spine.column_names).equals(spine)
    assert result.table.column("fv__f").to_pylist() == [12.0, 14.0, None, 30.0, 12.0]
    assert result.table.column("fv__label").to_pylist() == ["q", "r", None, "t", "q"]
    late = workspace.features.historical(_spine([(2, "b", 3.5)]), ["fv:f"], record=False)
    assert late.table.column("fv__f").to_pylist() == [None]
    _training_set_checks(workspace, result, "obs@0")
