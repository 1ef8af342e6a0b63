"""Feature definitions: validation of entities, views and services, linting on apply,
versioning in the catalog, and loading definitions from a ``features.py`` file.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import plinth
from plinth import Entity, FeatureService, FeatureView
from plinth.errors import ConfigError, PlinthError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
KEY = Entity("key", join_keys=["k1", "k2"])


def view(name: str = "fv", **overrides: Any) -> FeatureView:
    """A valid view over the 'src' table, with some arguments replaced."""
    arguments: dict[str, Any] = {
        "source": "src",
        "entities": [KEY],
        "timestamp": "ts",
        "features": {"f": "v"},
    }
    arguments.update(overrides)
    return FeatureView(name, **arguments)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[plinth.Workspace]:
    """An embedded workspace with a table 'src' of every column type the tests need."""
    workspace = plinth.Workspace(settings=plinth.Settings(home=tmp_path / "ws", user="tester"))
    workspace.lake.ingest(
        pa.table(
            {
                "k1": pa.array([1, 2], pa.int64()),
                "k2": ["a", "b"],
                "ts": pa.array([T0, T0 + timedelta(hours=1)], pa.timestamp("us", "UTC")),
                "day": pa.array([T0.date(), T0.date()]),
                "v": [1.0, 2.0],
                "label": ["x", "y"],
            }
        ),
        table="src",
    )
    yield workspace
    workspace.close()


# -- validation of the definitions themselves ----------------------------------------------

BAD_NAMES = ["", "1abc", "a-b", "a b", "a.b", "é", "x" * 129, "drop;table"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_for_every_kind(name: str) -> None:
    with pytest.raises(ConfigError, match="not valid") as caught:
        Entity(name)
    assert repr(name) in str(caught.value)
    with pytest.raises(ConfigError, match="Feature view"):
        view(name)
    with pytest.raises(ConfigError, match="Feature service"):
        FeatureService(name, ["fv"])
    with pytest.raises(ConfigError, match="Feature"):
        view(features={name: "v"})


@pytest.mark.parametrize("name", [None, 3, b"abc"])
def test_non_string_names_are_refused(name: Any) -> None:
    with pytest.raises(ConfigError):
        Entity(name)
    with pytest.raises(ConfigError):
        view(name)
    with pytest.raises(ConfigError):
        FeatureService(name, ["fv"])


def test_good_names_and_defaults() -> None:
    assert Entity("_x" + "y" * 126).name.endswith("y")
    assert Entity("tailnum").join_keys == ("tailnum",)
    fv = view("Weather_2", features=["v", "label"])
    assert fv.features == {"v": "v", "label": "label"}
    assert fv.join_keys == ("k1", "k2")
    assert FeatureService("svc", [fv, "other:feat"]).features == ("Weather_2", "other:feat")


def test_an_entity_needs_distinct_join_keys() -> None:
    with pytest.raises(ConfigError, match="distinct join keys") as caught:
        Entity("route", join_keys=["origin", "carrier", "origin"])
    assert "route" in str(caught.value)


def test_a_view_needs_entities_and_features() -> None:
    with pytest.raises(ConfigError, match="at least one entity") as caught:
        view(entities=[])
    assert "'fv'" in str(caught.value)
    with pytest.raises(ConfigError, match="no features"):
        view(features={})
    with pytest.raises(ConfigError, match="no features"):
        view(features=[])


def test_a_static_view_cannot_have_a_ttl() -> None:
    with pytest.raises(ConfigError, match="ttl but no timestamp") as caught:
        view(timestamp=None, ttl="2h")
    assert "'fv'" in str(caught.value)
    assert view(timestamp=None).ttl is None


@pytest.mark.parametrize("ttl", ["2 fortnights", "-1h", "h", "1y", "1.5.2h"])
def test_a_bad_ttl_is_refused(ttl: str) -> None:
    with pytest.raises(ConfigError, match="not a duration") as caught:
        view(ttl=ttl)
    assert "'fv'" in str(caught.value) and ttl in str(caught.value)


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1.5d", timedelta(days=1.5)),
        ("1w", timedelta(weeks=1)),
        (45, timedelta(seconds=45)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_ttl_forms(ttl: Any, expected: timedelta) -> None:
    assert view(ttl=ttl).ttl == expected


def test_a_feature_cannot_be_named_like_a_join_key() -> None:
    with pytest.raises(ConfigError, match="like its join keys") as caught:
        view(features={"k1": "k1", "f": "v"})
    assert "k1" in str(caught.value) and "'fv'" in str(caught.value)


def test_a_view_cannot_repeat_a_join_key_across_entities() -> None:
    with pytest.raises(ConfigError, match="repeats a join key") as caught:
        view(entities=[KEY, Entity("other", join_keys=["k2"])])
    assert "k2" in str(caught.value)


def test_a_service_needs_features() -> None:
    with pytest.raises(ConfigError, match="lists no features") as caught:
        FeatureService("svc", [])
    assert "'svc'" in str(caught.value)


TTL_ROUND_TRIPS = [
    pytest.param("2h", id="text"),
    pytest.param(timedelta(hours=2), id="timedelta-hours"),
    pytest.param(timedelta(milliseconds=1500), id="timedelta-fraction"),
    pytest.param(
        3600,
        id="int",
    ),
    pytest.param(
        90.5,
        id="float",
    ),
    pytest.param(
        timedelta(days=30),
        id="timedelta-30d",
    ),
]


@pytest.mark.parametrize("ttl", TTL_ROUND_TRIPS)
def test_a_view_round_trips_through_its_spec(ttl: Any) -> None:
    fv = view(ttl=ttl, created_timestamp="ts", description="d")
    again = FeatureView.from_spec(fv.spec(), {"key": KEY})
    assert again == fv
    assert again.ttl == fv.ttl
    assert Entity.from_spec(KEY.spec()) == KEY
    svc = FeatureService("svc", ["fv", "fv:f"], description="s")
    assert FeatureService.from_spec(svc.spec()) == svc


@pytest.mark.parametrize("ttl", TTL_ROUND_TRIPS)
def test_an_applied_views_ttl_reads_back(ws: plinth.Workspace, ttl: Any) -> None:
    ws.features.apply([view(ttl=ttl)])
    stored, version = ws.features.view("fv")
    assert version == 1
    assert stored.ttl == view(ttl=ttl).ttl


# -- linting on apply ----------------------------------------------------------------------


LINT_CASES = [
    ("missing-table", [view(source="nope")], ["table 'nope'", "does not exist"]),
    (
        "missing-join-key",
        [view(entities=[Entity("x", join_keys=["k1", "zz"])])],
        ["join key 'zz'", "'src'"],
    ),
    ("missing-timestamp", [view(timestamp="when")], ["timestamp column 'when'"]),
    ("string-timestamp", [view(timestamp="label")], ["'label'", "not a timestamp"]),
    ("float-timestamp", [view(timestamp="v")], ["'v'", "double", "not a timestamp"]),
    (
        "bad-created-timestamp",
        [view(created_timestamp="label")],
        ["created_timestamp column 'label'", "not a timestamp"],
    ),
    ("unknown-column", [view(features={"f": "nope + 1"})], ["feature 'f'", "nope"]),
    ("type-error", [view(features={"f": "label + 1"})], ["feature 'f'", "label + 1"]),
    ("syntax-error", [view(features={"f": "v +"})], ["feature 'f'"]),
    ("unknown-function", [view(features={"f": "nofunc(v)"})], ["feature 'f'", "nofunc"]),
    (
        "service-unknown-view",
        [view(), FeatureService("svc", ["fv", "ghost"])],
        ["service 'svc'", "unknown view 'ghost'"],
    ),
    (
        "service-unknown-feature",
        [view(), FeatureService("svc", ["fv:f", "fv:nope"])],
        ["service 'svc'", "unknown feature 'fv:nope'"],
    ),
]


@pytest.mark.parametrize(
    ("definitions", "words"), [pytest.param(c[1], c[2], id=c[0]) for c in LINT_CASES]
)
def test_apply_lints_and_names_the_problem(
    ws: plinth.Workspace, definitions: list[Any], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        ws.features.apply(definitions)
    message = str(caught.value)
    for word in words:
        assert word in message
    assert ws.features.definitions() == []


def test_apply_reports_every_problem_at_once(ws: plinth.Workspace) -> None:
    with pytest.raises(ConfigError) as caught:
        ws.features.apply(
            [
                view("one", source="nope"),
                view("two", features={"bad": "missing_col"}),
                FeatureService("svc", ["ghost"]),
            ]
        )
    message = str(caught.value)
    assert "view 'one'" in message and "view 'two'" in message and "ghost" in message


def test_a_date_timestamp_and_a_static_view_pass_lint(ws: plinth.Workspace) -> None:
    changes = ws.features.apply(
        [view("daily", timestamp="day"), view("static", timestamp=None, created_timestamp="ts")]
    )
    assert {(c.kind, c.name, c.status) for c in changes} == {
        ("entity", "key", "created"),
        ("view", "daily", "created"),
        ("view", "static", "created"),
    }


def test_a_service_may_name_a_view_applied_earlier(ws: plinth.Workspace) -> None:
    ws.features.apply([view()])
    changes = ws.features.apply([FeatureService("svc", ["fv:f"])])
    assert [(c.kind, c.name, c.version, c.status) for c in changes] == [
        ("service", "svc", 1, "created")
    ]


def test_an_aggregate_feature_is_a_lint_error(ws: plinth.Workspace) -> None:
    with pytest.raises(ConfigError, match="feature 'total'"):
        ws.features.apply([view(features={"total": "sum(v)"})])


# -- versions ------------------------------------------------------------------------------


def test_apply_is_idempotent(ws: plinth.Workspace) -> None:
    definitions = [view(ttl="2h"), view("st", timestamp=None), FeatureService("svc", ["fv"])]
    first = ws.features.apply(definitions)
    assert {c.status for c in first} == {"created"}
    assert [(c.kind, c.name) for c in first] == [
        ("entity", "key"),
        ("view", "fv"),
        ("view", "st"),
        ("service", "svc"),
    ]
    second = ws.features.apply(definitions)
    assert [(c.kind, c.name, c.version, c.status) for c in second] == [
        (c.kind, c.name, 1, "unchanged") for c in first
    ]


def test_a_changed_view_gets_a_new_version(ws: plinth.Workspace) -> None:
    ws.features.apply([view(), FeatureService("svc", ["fv"])])
    changes = ws.features.apply([view(features={"f": "v", "g": "v * 2"})])
    assert [(c.kind, c.name, c.version, c.status) for c in changes] == [
        ("entity", "key", 1, "unchanged"),
        ("view", "fv", 2, "changed"),
    ]
    stored, version = ws.features.view("fv")
    assert version == 2 and stored.features == {"f": "v", "g": "v * 2"}
    third = ws.features.apply([view(features={"f": "v", "g": "v * 2"}, ttl="1h")])
    assert [c.version for c in third if c.kind == "view"] == [3]
    kinds = {(kind, d.name, v) for kind, d, v in ws.features.definitions()}
    assert kinds == {("entity", "key", 1), ("view", "fv", 3), ("service", "svc", 1)}


def test_two_different_definitions_with_one_name_are_refused(ws: plinth.Workspace) -> None:
    with pytest.raises(ConfigError, match="Two different definitions") as caught:
        ws.features.apply([view(), view(features={"g": "v"})])
    assert "'fv'" in str(caught.value)
    with pytest.raises(ConfigError, match="entity 'key'"):
        ws.features.apply([view(), Entity("key", join_keys=["k1"])])


# -- loading a features.py file ------------------------------------------------------------

FEATURES_PY = """
from plinth import Entity, FeatureService, FeatureView

key = Entity("key", join_keys=["k1", "k2"])
fv = FeatureView(
    "fv", source="src", entities=[key], timestamp="ts", ttl="2h",
    features={"f": "v", "twice": "v * 2"},
)
svc = FeatureService("svc", [fv, "fv:twice"])
not_a_definition = 42
"""


def test_apply_loads_a_definitions_file(
    ws: plinth.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "features.py"
    path.write_text(textwrap.dedent(FEATURES_PY))
    changes = ws.features.apply(path)
    assert [(c.kind, c.name, c.status) for c in changes] == [
        ("entity", "key", "created"),
        ("view", "fv", "created"),
        ("service", "svc", "created"),
    ]
    assert {c.status for c in ws.features.apply(str(path))} == {"unchanged"}
    monkeypatch.chdir(tmp_path)
    assert {c.status for c in ws.features.apply()} == {"unchanged"}
    stored, _ = ws.features.view("fv")
    assert stored.ttl == timedelta(hours=2) and stored.features["twice"] == "v * 2"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("raise RuntimeError('boom')\n", ["RuntimeError", "boom"]),
        ("def broken(:\n", ["SyntaxError"]),
        ("import no_such_module_for_plinth_tests\n", ["no_such_module_for_plinth_tests"]),
    ],
    ids=["raises", "syntax", "import"],
)
def test_a_definitions_file_that_fails_to_import(
    ws: plinth.Workspace, tmp_path: Path, body: str, words: list[str]
) -> None:
    path = tmp_path / "features.py"
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        ws.features.apply(path)
    message = str(caught.value)
    assert "features.py" in message
    for word in words:
        assert word in message
    assert ws.features.definitions() == []


def test_a_definitions_file_with_a_bad_definition(ws: plinth.Workspace, tmp_path: Path) -> None:
    path = tmp_path / "defs.py"
    path.write_text("from plinth import Entity\nbad = Entity('no-dash')\n")
    with pytest.raises(ConfigError, match="'no-dash'"):
        ws.features.apply(path)


def test_a_missing_definitions_file(
    ws: plinth.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        ws.features.apply(tmp_path / "absent.py")
    assert "absent.py" in str(caught.value)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"features\.py"):
        ws.features.apply()


def test_a_definitions_file_whose_view_does_not_lint(ws: plinth.Workspace, tmp_path: Path) -> None:
    path = tmp_path / "features.py"
    path.write_text(textwrap.dedent(FEATURES_PY).replace('"v * 2"', '"w * 2"'))
    with pytest.raises(PlinthError, match="feature 'twice'"):
        ws.features.apply(path)
