"""Querying runs: the filter and sort languages, their SQL on both backends, details, compare."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from plinth._core.settings import Settings
from plinth.catalog.lineage import Node, add_edge
from plinth.catalog.models import RunArtifact, RunResource
from plinth.errors import ConfigError, NotFoundError, RunNotFoundError
from plinth.tracking.query import (
    FILTER_EXAMPLE,
    Condition,
    Field,
    build_query,
    parse_filter,
    parse_sort,
    tokenize,
)
from plinth.tracking.service import Runs
from plinth.workspace import Workspace
from tests.tracking.rows import T0, add_run

# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_every_comparison_operator_parses(op):
    (condition,) = parse_filter(f"metrics.auc {op} 0.7")
    assert condition == Condition(Field("metric", "auc"), op, 0.7)
    (condition,) = parse_filter(f"metrics.auc{op}-1e-3")
    assert condition.op == op and condition.value == -0.001


def test_conditions_join_with_and_in_any_case():
    conditions = parse_filter(
        "metrics.auc > 0.7 AND params.lr = 0.1 and tags.team LIKE 'vis%' And status = 'finished'"
    )
    assert conditions == [
        Condition(Field("metric", "auc"), ">", 0.7),
        Condition(Field("param", "lr"), "=", 0.1),
        Condition(Field("tag", "team"), "like", "vis%"),
        Condition(Field("attribute", "status"), "=", "finished"),
    ]


def test_keys_with_punctuation_and_backquotes():
    assert parse_filter("metrics.val/loss-2.x_y < 1")[0].field == Field("metric", "val/loss-2.x_y")
    assert parse_filter("params.`batch size` >= 32")[0].field == Field("param", "batch size")
    assert parse_filter("tags.`a``b` = 'x'")[0].field == Field("tag", "a`b")
    assert str(Field("param", "batch size")) == "params.`batch size`"
    assert str(Field("metric", "val/loss")) == "metrics.val/loss"


def test_values_strings_numbers_times_and_null():
    assert parse_filter("params.opt = 'it''s'")[0].value == "it's"
    assert parse_filter('params.opt = "adam"')[0].value == "adam"
    assert parse_filter("params.lr = '0.1'")[0].value == "0.1"  # quoted: compared as text
    assert parse_filter("params.lr = .5")[0].value == 0.5
    started = parse_filter("started_at >= '2026-03-01T12:00:00Z'")[0].value
    assert started == datetime(2026, 3, 1, 12, tzinfo=UTC)
    local = parse_filter("ended_at < '2026-03-01T14:00:00+02:00'")[0].value
    assert local == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_filter("started_at > '2026-03-01'")[0].value == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_filter("parent_id = NULL")[0] == Condition(
        Field("attribute", "parent_id"), "=", None
    )
    assert parse_filter("STATUS = 'x'")[0].field == Field("attribute", "status")


def test_empty_filter_is_no_condition():
    assert parse_filter(None) == [] and parse_filter("  ") == []


@pytest.mark.parametrize(
    ("bad", "position", "fragment"),
    [
        ("metrics.auc >> 0.7", 14, "found '>'"),
        ("metrics.auc > 'high'", 15, "metric values are numbers"),
        ("metrics.auc like '0.%'", 13, "metric values are numbers"),
        ("metrics.auc > 0.7 or params.lr = 1", 19, "expected 'and'"),
        ("metrics.auc > 0.7 and", 22, "found the end of the text"),
        ("metrics.auc >", 14, "expected a number or a quoted string"),
        ("foo = 1", 1, "'foo' is not a field"),
        ("bar.x = 1", 1, "'bar' is not a field prefix"),
        ("metrics. = 1", 1, "names no key"),
        ("tags.team = 3", 13, "quote '3'"),
        ("status = finished", 10, "found 'finished'"),
        ("params.opt = 'adam", 14, "never closed"),
        ("params.`opt = 1", 8, "never closed"),
        ("metrics.auc == 0.7", 13, "'==' is not an operator"),
        ("metrics.auc ! 0.7", 13, "'!' is not an operator"),
        ("metrics.auc > 0.7abc", 15, "'0.7abc' is not a number"),
        ("metrics.auc > 1; drop table runs", 16, "unexpected character ';'"),
        ("status = null", 10, "cannot be compared with null"),
        ("parent_id < null", 11, "using = or != only"),
        ("started_at > 'yesterday'", 14, "not an ISO 8601 time"),
        ("started_at like '2026%'", 12, "cannot be matched with like"),
        ("params.lr like 1", 16, "like needs a quoted pattern"),
        ("experiment = 3", 14, "quote '3'"),
        ("= 3", 1, "expected a field"),
    ],
)
def test_malformed_filters_name_the_token_and_position(bad, position, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_filter(bad)
    error = caught.value
    assert f"at position {position}:" in error.message
    assert fragment in error.message
    assert FILTER_EXAMPLE in (error.hint or "")
    assert error.message.endswith(".")


def test_sort_parsing():
    assert [(str(k.field), k.descending) for k in parse_sort(None)] == [("started_at", True)]
    keys = parse_sort("metrics.auc DESC, params.lr, tags.team asc, id")
    assert [(str(k.field), k.descending) for k in keys] == [
        ("metrics.auc", True),
        ("params.lr", False),
        ("tags.team", False),
        ("id", False),
    ]
    for bad, fragment in [
        ("metrics.auc sideways", "found 'sideways'"),
        ("metrics.auc desc,", "found the end of the text"),
        ("nope", "'nope' is not a field"),
        ("metrics.auc desc desc", "found 'desc'"),
    ]:
        with pytest.raises(ConfigError, match=fragment) as caught:
            parse_sort(bad)
        assert "metrics.auc desc" in (caught.value.hint or "")


def test_tokens_carry_positions():
    tokens = tokenize("metrics.auc>=0.7")
    assert [(t.kind, t.position) for t in tokens] == [
        ("name", 1),
        ("op", 12),
        ("number", 14),
        ("end", 17),
    ]


def test_bad_pagination_is_a_config_error():
    with pytest.raises(ConfigError, match="limit must be zero or more"):
        build_query(limit=-1)
    with pytest.raises(ConfigError, match="offset must be zero or more"):
        build_query(offset=-5)


# -- queries on both backends ------------------------------------------------------------------


@pytest.fixture
def runs(workspace):
    """Six runs: a parent with two children, a failed run, a run without metrics, a NaN."""
    with workspace.catalog.session() as s:
        add_run(
            s,
            "run_a",
            experiment="flights",
            minutes=0,
            params={"lr": 0.1, "opt": "adam", "depth": 6},
            metrics={"auc": 0.81, "loss": 0.30},
            tags={"team": "vision", "stage": "dev"},
        )
        add_run(
            s,
            "run_b",
            experiment="flights",
            minutes=1,
            params={"lr": 0.01, "opt": "sgd", "depth": 8},
            metrics={"auc": 0.72, "loss": 0.45},
            tags={"team": "vision"},
            parent_id="run_a",
        )
        add_run(
            s,
            "run_c",
            experiment="flights",
            minutes=2,
            params={"lr": 0.1, "opt": "adamw", "depth": "deep"},
            metrics={"auc": 0.65, "val/loss": 0.5},
            tags={"team": "nlp"},
            parent_id="run_a",
            launcher="torchrun",
        )
        add_run(
            s,
            "run_d",
            experiment="weather",
            status="failed",
            minutes=3,
            params={"lr": "0.1"},
            metrics={"auc": 0.9},
        )
        add_run(s, "run_e", experiment="weather", status="running", minutes=4, duration=None)
        add_run(s, "run_f", experiment="weather", minutes=5, metrics={"auc": math.nan})
    return Runs(workspace)


def ids(found):
    return [r.id for r in found]


def test_default_order_is_newest_first(runs):
    assert ids(runs.list()) == ["run_f", "run_e", "run_d", "run_c", "run_b", "run_a"]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("metrics.auc = 0.81", {"run_a"}),
        ("metrics.auc != 0.81", {"run_b", "run_c", "run_d"}),  # NaN and missing never match
        ("metrics.auc < 0.72", {"run_c"}),
        ("metrics.auc <= 0.72", {"run_b", "run_c"}),
        ("metrics.auc > 0.72", {"run_a", "run_d"}),
        ("metrics.auc >= 0.72", {"run_a", "run_b", "run_d"}),
        ("metrics.`val/loss` < 1", {"run_c"}),
        ("metrics.val/loss < 1", {"run_c"}),
        ("params.lr = 0.1", {"run_a", "run_c", "run_d"}),  # '0.1' logged as text is 0.1 too
        ("params.lr < 0.05", {"run_b"}),
        ("params.lr = '0.1'", {"run_a", "run_c", "run_d"}),  # every stored text is 0.1
        ("params.lr = '0.10'", set()),  # quoted: compared as text
        ("params.lr = 0.10", {"run_a", "run_c", "run_d"}),
        ("params.depth = '6'", {"run_a"}),
        ("params.depth > 7", {"run_b"}),
        ("params.depth = 'deep'", {"run_c"}),
        ("params.opt like 'adam%'", {"run_a", "run_c"}),
        ("params.opt != 'adam'", {"run_b", "run_c"}),
        ("tags.team = 'vision'", {"run_a", "run_b"}),
        ("tags.team != 'vision'", {"run_c"}),
        ("tags.team like 'n%'", {"run_c"}),
        ("tags.team LIKE 'VIS_ON'", {"run_a", "run_b"}),  # like ignores case on both backends
        ("tags.team = 'VISION'", set()),  # = does not
        ("status = 'failed'", {"run_d"}),
        ("status != 'finished'", {"run_d", "run_e"}),
        ("experiment like 'wea%'", {"run_d", "run_e", "run_f"}),
        ("id = 'run_b'", {"run_b"}),
        ("parent_id = 'run_a'", {"run_b", "run_c"}),
        ("parent_id != null", {"run_b", "run_c"}),
        ("ended_at = null", {"run_e"}),
        ("launcher = 'torchrun'", {"run_c"}),
        ("started_at >= '2026-03-01T12:04:00Z'", {"run_e", "run_f"}),
        ("started_at < '2026-03-01T13:02:00+01:00'", {"run_a", "run_b"}),
        ("metrics.auc > 0.7 and params.lr = 0.1", {"run_a", "run_d"}),
        ("metrics.auc > 0.7 and params.lr = 0.1 and tags.team = 'vision'", {"run_a"}),
        ("metrics.nope > 0", set()),
    ],
)
def test_filters(runs, flt, expected):
    assert set(ids(runs.list(filter=flt))) == expected


def test_sort_by_metric_puts_missing_and_nan_last(runs):
    assert ids(runs.list(sort="metrics.auc desc")) == [
        "run_d",
        "run_a",
        "run_b",
        "run_c",
        "run_f",  # NaN, then no auc at all; ties newest first
        "run_e",
    ]
    assert ids(runs.list(sort="metrics.auc"))[:4] == ["run_c", "run_b", "run_a", "run_d"]
    assert set(ids(runs.list(sort="metrics.auc"))[4:]) == {"run_e", "run_f"}


def test_sort_by_param_numbers_then_text_then_missing(runs):
    assert ids(runs.list(sort="params.depth")) == [
        "run_a",  # 6
        "run_b",  # 8
        "run_c",  # 'deep' is not a number
        "run_f",
        "run_e",
        "run_d",
    ]
    assert ids(runs.list(sort="params.depth desc"))[:3] == ["run_b", "run_a", "run_c"]


def test_sort_by_tag_attribute_and_several_keys(runs):
    assert ids(runs.list(sort="tags.team, id desc"))[:3] == ["run_c", "run_b", "run_a"]
    assert ids(runs.list(sort="experiment desc, started_at")) == [
        "run_d",
        "run_e",
        "run_f",
        "run_a",
        "run_b",
        "run_c",
    ]
    assert ids(runs.list(filter="metrics.auc > 0", sort="params.lr desc, metrics.auc")) == [
        "run_c",  # lr 0.1, auc 0.65
        "run_a",  # lr 0.1, auc 0.81
        "run_d",  # lr '0.1' (text, number 0.1), auc 0.9
        "run_b",
    ]


def test_pagination_covers_every_run_once(runs):
    everything = ids(runs.list(sort="metrics.auc desc"))
    pages = [ids(runs.list(sort="metrics.auc desc", limit=2, offset=o)) for o in (0, 2, 4, 6)]
    assert pages[:3] == [everything[0:2], everything[2:4], everything[4:6]]
    assert pages[3] == []
    assert runs.list(limit=0) == []


def test_summaries_carry_params_metrics_tags(runs):
    (a,) = runs.list(filter="id = 'run_a'")
    assert a.experiment == "flights" and a.status == "finished"
    assert a.params == {"depth": "6", "lr": "0.1", "opt": "adam"}
    assert a.metrics == {"auc": 0.81, "loss": 0.30}
    assert a.tags == {"stage": "dev", "team": "vision"}
    assert a.duration == 60.0 and a.started_at == T0
    (f,) = runs.list(filter="id = 'run_f'")
    assert math.isnan(f.metrics["auc"]) and f.to_dict()["metrics"] == {"auc": None}
    (e,) = runs.list(filter="status = 'running'")
    assert e.duration is None and e.to_dict()["ended_at"] is None


def test_malformed_filter_through_the_service(runs):
    with pytest.raises(ConfigError, match="position 13"):
        runs.list(filter="metrics.auc ? 1")


def _plan(ws, explain: str, flt: str, setup: str | None = None) -> str:
    statement = build_query(flt)
    sql = str(statement.compile(ws.catalog.engine, compile_kwargs={"literal_binds": True}))
    with ws.catalog.engine.connect() as conn:
        if setup:
            conn.execute(text(setup))
        return "\n".join(str(row[-1]) for row in conn.execute(text(f"{explain} {sql}")))


def test_sqlite_plan_uses_the_key_value_indexes(tmp_path):
    with Workspace(settings=Settings(home=tmp_path / "ws", user="tester")) as ws:
        plan = _plan(
            ws,
            "EXPLAIN QUERY PLAN",
            "metrics.auc > 0.7 and params.lr = 0.1 and tags.team = 'x'",
        )
    assert "ix_run_metrics_key_last" in plan
    assert "ix_run_params_key_number" in plan
    assert "ix_run_tags_key_value" in plan


@pytest.mark.postgres
def test_postgres_can_answer_filters_from_the_key_value_indexes(postgres_db_url, tmp_path):
    settings = Settings(home=tmp_path / "ws", user="tester", database_url=postgres_db_url)
    with Workspace(settings=settings) as ws:
        off = "SET enable_seqscan = off"
        assert "ix_run_metrics_key_last" in _plan(ws, "EXPLAIN", "metrics.auc > 0.7", off)
        assert "ix_run_params_key_number" in _plan(ws, "EXPLAIN", "params.lr = 0.1", off)


# -- details and comparisons ---------------------------------------------------------------------


def test_get_returns_everything_recorded(runs, workspace):
    with workspace.catalog.session() as s:
        s.add(
            RunArtifact(
                run_id="run_a",
                name="model.pkl",
                kind="model",
                digest="ab" * 32,
                size=2048,
                created_at=T0,
            )
        )
        s.add(
            RunResource(
                run_id="run_a",
                rank=0,
                host="box",
                wall_seconds=60.0,
                cpu_seconds=50.0,
                peak_rss_bytes=1 << 30,
                gpu_count=0,
                gpu_seconds=0.0,
                gpu_peak_bytes=0,
                recorded_at=T0,
            )
        )
        add_edge(s, Node("table_version", "flights@3"), Node("run", "run_a"), "input_of")
        add_edge(s, Node("run", "run_a"), Node("model_version", "m@1"), "produced")
    detail = runs.get("run_a")
    assert detail.params["opt"] == "adam" and detail.metrics["auc"] == 0.81
    assert detail.metric_summaries["loss"].count == 1
    assert [a.name for a in detail.artifacts] == ["model.pkl"]
    assert detail.resources[0].peak_rss_bytes == 1 << 30
    assert [(str(e.source), e.relation) for e in detail.inputs] == [
        ("table_version:flights@3", "input_of")
    ]
    assert detail.children == ["run_b", "run_c"]
    assert detail.launcher == "local" and detail.created_by == "tester"
    data = detail.to_dict()
    assert data["inputs"][0]["source"] == "table_version:flights@3"
    assert data["started_at"].startswith("2026-03-01T12:00:00")


def test_get_unknown_and_prefixed_ids(runs, workspace):
    with workspace.catalog.session() as s:
        add_run(s, "run_xyz123", minutes=9)
    assert runs.get("run_xy").id == "run_xyz123"
    with pytest.raises(RunNotFoundError, match="No run has the id 'run_zzz'") as caught:
        runs.get("run_zzz")
    assert isinstance(caught.value, NotFoundError) and "plinth runs list" in caught.value.hint
    assert runs.get("run_c").id == "run_c"
    with pytest.raises(ConfigError, match="ambiguous"):
        runs.get("run_")
    with pytest.raises(RunNotFoundError):
        runs.get("run%")  # a LIKE wildcard is taken literally
    with pytest.raises(RunNotFoundError):
        runs.get("RUN_XY")  # ids match with their case, on every backend


def test_compare_side_by_side(runs):
    table = runs.compare(["run_a", "run_b", "run_a"])
    assert table.run_ids == ["run_a", "run_b"]
    params = {row.key: row for row in table.section("param")}
    assert params["lr"].values == ["0.1", "0.01"] and params["lr"].differs
    metrics = {row.key: row for row in table.section("metric")}
    assert metrics["auc"].values == [0.81, 0.72]
    attributes = {row.key: row for row in table.section("attribute")}
    assert not attributes["experiment"].differs and attributes["experiment"].values == [
        "flights",
        "flights",
    ]
    data = table.to_dict()
    assert data["params"]["opt"] == ["adam", "sgd"] and "param:lr" in data["differs"]
    missing = runs.compare(["run_a", "run_e"])
    assert {r.key: r.values for r in missing.section("metric")}["auc"] == [0.81, None]
    with pytest.raises(RunNotFoundError, match="ghost"):
        runs.compare(["run_a", "ghost"])
    with pytest.raises(ConfigError, match="No run ids"):
        runs.compare([])


def test_started_at_filters_match_stored_times(runs):
    after = (T0 + timedelta(minutes=2, seconds=30)).isoformat()
    assert set(ids(runs.list(filter=f"started_at > '{after}'"))) == {"run_d", "run_e", "run_f"}


@pytest.mark.parametrize(
    ("flt", "sort"),
    [
        ("metrics.auc > 0.6", "metrics.auc desc"),
        ("metrics.auc > 0.6 and params.lr = 0.1", "metrics.auc"),
        ("metrics.auc >= 0.65 and status = 'finished'", "metrics.auc desc, params.depth desc"),
        ("metrics.auc < 0.95 and tags.team = 'vision'", "metrics.auc desc, started_at"),
    ],
)
def test_sorting_by_a_filtered_metric_walks_its_index_with_the_same_result(runs, flt, sort):
    from sqlalchemy import select

    from plinth.catalog.models import Run
    from plinth.tracking.query import apply_sort, build_query, filter_clause, parse_sort

    assert "drive_m" in str(build_query(flt, sort))
    general = apply_sort(select(Run).where(filter_clause(flt)), parse_sort(sort))
    with runs.ws.catalog.session() as s:
        expected = [r.id for r in s.scalars(general)]
        for offset in range(len(expected) + 1):
            page = s.scalars(build_query(flt, sort, limit=2, offset=offset)).all()
            assert [r.id for r in page] == expected[offset : offset + 2]
