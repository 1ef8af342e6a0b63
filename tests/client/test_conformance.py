"""One conformance suite for :class:`plinth.client.PlinthClient`, run against both backends.

Every test runs twice: over the local catalog (``LocalClient``) and through a real server
(``RemoteClient`` over HTTP, authentication on, an admin token). Expected values come from the
workspace's own services at the moment of the call, so both backends must return exactly
what the services hold: the same ids, values and error classes.

Not applicable locally: a local client acts as the workspace's own user, whose role comes
from its bindings (admin in the embedded catalog); there is no viewer principal to refuse, so
``Forbidden`` is checked on the remote backend only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from plinth.errors import (
    ConfigError,
    ConflictError,
    ModelNotFoundError,
    NotFoundError,
    RunNotFoundError,
    TableNotFoundError,
)
from tests.client.conftest import EXPERIMENTS, USER


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (records hold NaN for missing metric values)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if hasattr(a, "__dataclass_fields__") and type(a) is type(b):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def undated(text: str) -> str:
    """A chart's text without the time it was made at."""
    import re

    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", text)


# -- lake ----------------------------------------------------------------------------------


def test_tables_table_and_versions(client, world):
    assert same(client.tables(), world.ws.lake.tables())
    assert [t.name for t in client.tables()] == ["airports", "flights"]
    assert same(client.table("flights"), world.ws.lake.table("flights"))
    versions = client.table_versions("flights")
    assert [v.version for v in versions] == [0, 1]
    assert same(versions, world.ws.lake.history("flights"))


def test_an_unknown_table_raises_table_not_found(client):
    with pytest.raises(TableNotFoundError, match="Table 'nope' does not exist"):
        client.table("nope")
    with pytest.raises(TableNotFoundError):
        client.table_versions("nope")


# -- runs ----------------------------------------------------------------------------------


def test_runs_page_by_page_walks_every_run(client, world):
    expected = [r.id for r in world.ws.runs.list(limit=1000)]
    page = client.runs(limit=2)
    assert [r.id for r in page] == expected[:2] and page.next_cursor is not None
    walked = [r.id for r in client.iter_runs(limit=2)]
    assert walked == expected
    assert len(set(walked)) == len(walked)


def test_runs_filter_sort_and_experiment(client, world):
    found = list(client.iter_runs(experiment="exp-a", sort="metrics.auc desc, id", limit=500))
    local = world.ws.runs.list("experiment = 'exp-a'", "metrics.auc desc, id", limit=500)
    assert same(found, local)
    assert {r.experiment for r in found} == {"exp-a"} and len(found) == 3
    narrowed = client.runs("params.i >= 2", experiment=EXPERIMENTS[1]).items
    assert [(r.experiment, r.params["i"]) for r in narrowed] == [("exp-b", "3")]


def test_a_malformed_filter_is_a_config_error(client):
    with pytest.raises(ConfigError):
        client.runs("metrics.auc >>> 1")


def test_run_detail_equals_the_service(client, world):
    run_id = world.run_ids[0]
    detail = client.run(run_id)
    assert same(detail, world.ws.runs.get(run_id))
    assert detail.params == {"i": "0", "lr": "0.1"} and detail.tags == {"team": "ops"}
    assert detail.metric_summaries["loss"].count == 20
    assert math.isnan(detail.metrics["nan"])


def test_an_unknown_run_raises_run_not_found(client):
    with pytest.raises(RunNotFoundError, match="No run has the id 'run_nope'"):
        client.run("run_nope")
    with pytest.raises(RunNotFoundError):
        client.metric_history("run_nope", "loss")


def test_metric_history_full_and_downsampled(client, world):
    run_id = world.run_ids[1]
    history = client.metric_history(run_id, "loss")
    assert same(history, world.ws.runs.history(run_id, "loss", 500))
    assert history.steps == list(range(20)) and not history.downsampled
    small = client.metric_history(run_id, "auc", max_points=4)
    assert small.total == 20 and small.downsampled and len(small.steps) <= 4
    assert same(small, world.ws.runs.history(run_id, "auc", 4))


# -- registry ------------------------------------------------------------------------------


def test_models_model_and_versions(client, world):
    assert same(client.models(), world.ws.models.list())
    detail = client.model("clf")
    assert [v.version for v in detail.versions] == [1, 2]
    assert detail.aliases == {"champion": 1}
    assert same(detail.versions, world.ws.models.versions("clf"))
    assert same(client.model_version("clf", 2), world.ws.models.get("clf:2"))
    assert client.model_version("clf", "champion").version == 1


def test_unknown_models_versions_and_aliases_raise_model_not_found(client):
    with pytest.raises(ModelNotFoundError, match="No model is registered under the name"):
        client.model("nope")
    with pytest.raises(ModelNotFoundError, match="has no version 99"):
        client.model_version("clf", 99)
    with pytest.raises(ModelNotFoundError, match="has no alias 'ghost'"):
        client.model_version("clf", "ghost")
    with pytest.raises(ModelNotFoundError):
        client.set_alias("clf", "champion", 99)


def test_set_alias_then_model_shows_it_then_remove(client, backend, world):
    alias = f"staging-{backend}"
    event = client.set_alias("clf", alias, 2, reason="try it")
    assert (event.action, event.version, event.reason, event.by) == ("set", 2, "try it", USER)
    assert client.model("clf").aliases[alias] == 2
    assert client.model_version("clf", alias).version == 2
    assert client.set_alias("clf", alias, 2) is None  # already there: unchanged
    moved = client.set_alias("clf", alias, 1)
    assert (moved.action, moved.previous_version) == ("move", 2)
    removed = client.remove_alias("clf", alias)
    assert (removed.action, removed.previous_version) == ("remove", 1)
    assert alias not in client.model("clf").aliases
    assert same(client.models(), world.ws.models.list())


def test_a_viewer_token_is_forbidden_to_move_an_alias(backend, world):
    if backend == "local":
        pytest.skip("N/A locally: a local client acts as the workspace's user (admin here).")
    from plinth.client import RemoteClient
    from plinth.governance.access import Forbidden

    with RemoteClient(world.server.url, world.viewer_token) as viewer:
        assert viewer.whoami().role == "viewer"
        assert [m.name for m in viewer.models()] == ["clf"]  # reading is allowed
        with pytest.raises(Forbidden, match="may not models:promote"):
            viewer.set_alias("clf", "champion", 2)
        with pytest.raises(Forbidden):
            viewer.audit()
    assert world.ws.models.list()[0].aliases == {"champion": 1}


def test_a_bad_token_is_unauthenticated(backend, world):
    if backend == "local":
        pytest.skip("N/A locally: no credentials are involved.")
    from plinth.client import RemoteClient
    from plinth.governance.access import Unauthenticated

    stranger = RemoteClient(world.server.url, "plt_" + "x" * 43)
    with stranger, pytest.raises(Unauthenticated, match="not known"):
        stranger.models()


# -- pipelines, deployments, monitoring ----------------------------------------------------


def test_pipeline_runs_deployments_and_alerts(client, world):
    from plinth.monitoring.alerts import AlertManager

    runs = client.pipeline_runs(10)
    assert [r.status for r in runs] == ["succeeded"]
    assert same(runs, world.ws.pipelines.runs(limit=10))
    deployments = client.deployments()
    assert [(d.name, d.spec.routes[0].uri) for d in deployments] == [("clf", "clf@champion")]
    assert same(deployments, world.ws.deployments.list())
    alerts = client.alerts()
    assert [(a.rule, a.model, a.state) for a in alerts] == [("hot", "clf", "firing")]
    assert same(alerts, AlertManager(world.ws).alerts())
    assert client.alerts(state="resolved") == []
    assert same(client.alerts(model="clf"), alerts)
    assert client.alerts(model="other") == []


def test_an_unknown_alert_state_is_a_config_error(client):
    with pytest.raises(ConfigError):
        client.alerts(state="exploded")


def test_table_summary_equals_the_service(client, world):
    from plinth.quality.observability import summarize

    def plain(summary):
        data = summary.to_dict()
        del data["created_at"]  # when each summary was made
        if data["freshness"]:
            del data["freshness"]["checked_at"]
        return data

    summary = client.table_summary("flights")
    assert (summary.table, summary.version, summary.reference_version) == ("flights", 1, 0)
    assert [(p.version, p.row_count) for p in summary.volume] == [(0, 3), (1, 4)]
    assert {s.column for s in summary.shifts} >= {"delay"}
    assert plain(summary) == plain(summarize(world.ws.lake, "flights"))
    older = client.table_summary("flights", version=0, against=0)
    assert plain(older) == plain(summarize(world.ws.lake, "flights", against=0, version=0))
    assert older.reference_version == 0 and older.row_count == 3


def test_table_summary_of_an_unknown_table_or_version(client):
    from plinth.errors import VersionNotFoundError

    with pytest.raises(TableNotFoundError):
        client.table_summary("nope")
    with pytest.raises(VersionNotFoundError):
        client.table_summary("flights", version=7)
    with pytest.raises(VersionNotFoundError):
        client.table_summary("flights", against=9)


# -- cost ----------------------------------------------------------------------------------


def test_cost_report_by_each_grouping_equals_the_service(client, world):
    from datetime import timedelta

    from plinth._core.clock import utcnow
    from plinth.cost.accounting import BY, cost_report

    until = utcnow()
    for by in BY:
        report = client.cost(by, until=until)
        assert same(report, cost_report(world.ws, by, now=until)), by
        assert report.by == by and report.window.end == until
    runs = client.cost("run", since=until - timedelta(days=30), until=until)
    assert same(runs, cost_report(world.ws, "run", until - timedelta(days=30), now=until))
    assert {r.run_id for r in runs.items} >= set(world.run_ids)
    assert runs.to_dict() == cost_report(world.ws, "run", runs.window.start, now=until).to_dict()
    later = client.cost("run", since=until + timedelta(hours=1), until=until + timedelta(hours=2))
    assert later.items == [] and later.total_usd == 0


def test_a_bad_cost_grouping_or_window_is_a_config_error(client):
    from datetime import timedelta

    from plinth._core.clock import utcnow

    with pytest.raises(ConfigError, match="Cannot group costs by 'nope'"):
        client.cost("nope")
    now = utcnow()
    with pytest.raises(ConfigError, match="after it ends"):
        client.cost("run", since=now, until=now - timedelta(hours=1))


# -- governance ----------------------------------------------------------------------------


def test_audit_events_and_verification(client, world):
    from plinth.catalog.audit import events, verify

    found = client.audit(resource="model:clf", limit=500)
    assert same(found, events(world.ws, resource="model:clf", limit=500))
    assert {e.action for e in found} >= {"model.register", "model.alias"}
    assert len(client.audit(limit=3)) == 3
    check = client.audit_verify()
    assert check.ok and check.events == verify(world.ws).events


def test_lineage_up_and_down(client, world):
    from plinth.governance.lineage import lineage

    up = client.lineage("clf@champion")
    assert up.to_dict() == lineage(world.ws, "clf@champion").to_dict()
    assert up.root == "model_version:clf/1" and up.of_kind("run")
    down = client.lineage("flights@0", direction="down", depth=1)
    assert down.to_dict() == lineage(world.ws, "flights@0", "down", 1).to_dict()


def test_lineage_of_nothing_raises_not_found(client):
    with pytest.raises(NotFoundError):
        client.lineage("nothing-here")
    with pytest.raises(ConfigError):
        client.lineage("clf@champion", direction="sideways")


def test_whoami(client):
    me = client.whoami()
    assert (me.subject, me.role, me.project) == (USER, "admin", "default")
    assert "models:promote" in me.permissions and "tokens:admin" in me.permissions


# -- tracking through the client -----------------------------------------------------------


def test_start_run_logs_1000_points_in_batches(client, backend, world):
    before = world.app.count("POST", "/metrics")
    with client.start_run(f"live-{backend}", params={"lr": 0.01}, tags={"via": backend}) as run:
        for step in range(1000):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metrics({"acc": 0.5, "f1": 0.25}, step=7)
        run.log_metric("acc", 0.75)  # step 8: one past the key's last
    history = client.metric_history(run.id, "loss", max_points=2000)
    assert history.steps == list(range(1000)) and history.total == 1000
    assert history.values[999] == pytest.approx(0.001)
    assert client.metric_history(run.id, "acc").steps == [7, 8]
    detail = client.run(run.id)
    assert (detail.status, detail.params, detail.tags) == (
        "finished", {"lr": "0.01"}, {"via": backend}
    )  # fmt: skip
    assert same(detail.metric_summaries, world.ws.runs.get(run.id).metric_summaries)
    requests = world.app.count("POST", "/metrics") - before
    if backend == "remote":
        assert 1 <= requests < 10  # 1,003 points went in a few batches
    else:
        assert requests == 0


def test_bad_metric_names_and_steps_are_refused_at_the_call(client, backend):
    with client.start_run(f"bad-points-{backend}") as run:
        run.log_metric("loss", 0.5, step=0)
        for call in (
            lambda: run.log_metric("loss", 0.4, step=1.5),
            lambda: run.log_metric("loss", 0.4, step="2"),
            lambda: run.log_metrics({"loss": 0.4}, step=True),
            lambda: run.log_metric("x" * 251, 0.4),
            lambda: run.log_metrics({3: 0.4}),
        ):
            with pytest.raises(ConfigError, match=r"step|Metric name"):
                call()
        run.log_metric("loss", 0.3, step=np.int64(1))
    assert client.metric_history(run.id, "loss").steps == [0, 1]


def test_a_failure_inside_the_run_marks_it_failed(client, backend):
    with pytest.raises(ValueError, match="boom"), client.start_run(f"fail-{backend}") as run:
        run.log_metric("loss", 0.5)
        raise ValueError("boom")
    assert run.status == "failed"
    detail = client.run(run.id)
    assert (detail.status, detail.error) == ("failed", "ValueError: boom")
    assert detail.metric_summaries["loss"].count == 1
    run.end()  # ending again is a no-op


def test_tag_run_tags_an_ended_run(client, backend):
    with client.start_run(f"tagged-{backend}", tags={"via": backend}) as run:
        run.log_metric("loss", 0.5)
    client.tag_run(run.id, {"best": "true", "rank": 1})
    assert client.run(run.id).tags == {"via": backend, "best": "true", "rank": "1"}
    with pytest.raises(RunNotFoundError):
        client.tag_run("run_does_not_exist", {"best": "true"})


def test_an_explicit_end_and_logging_after_it(client, backend):
    run = client.start_run(f"ended-{backend}")
    run.log_metrics({"a": 1.0})
    run.end("killed", error="stopped by hand")
    detail = client.run(run.id)
    assert (detail.status, detail.error) == ("killed", "stopped by hand")
    assert detail.metrics == {"a": 1.0}


def test_artifacts_inputs_params_and_usage_of_a_run(client, backend, world, tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00\x01" * 100)
    plots = tmp_path / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "a.txt").write_text("a")
    (plots / "sub" / "b.txt").write_text("bb")
    with client.start_run(f"artifacts-{backend}", params={"lr": 0.1}) as run:
        assert run.log_artifact(weights) == "weights.bin"
        assert run.log_artifact(bytearray(b"raw"), name="raw.bin") == "raw.bin"
        assert run.log_artifact({"auc": 0.7}, "eval.json") == "eval.json"
        assert run.log_artifact("some text", "notes.txt") == "notes.txt"
        assert run.log_artifact(plots) == "plots"
        assert run.use("flights@0") == "table_version:flights@0"
        assert run.use("airports") == "table_version:airports@0"  # its version now, exactly
        run.log_params({"lr": 0.1})  # the same value again is fine
        with pytest.raises(ConflictError, match="lr"):
            run.log_params({"lr": 0.2})
        with pytest.raises(ConfigError, match="needs a name"):
            run.log_artifact(b"nameless")
        with pytest.raises(ConfigError, match="does not exist"):
            run.log_artifact(tmp_path / "missing.bin")
        with pytest.raises(TableNotFoundError):
            run.use("nowhere@0")
        with pytest.raises(ConfigError, match="run input"):
            run.use(42)
    detail = client.run(run.id)
    artifacts = {a.name: (a.kind, a.size) for a in detail.artifacts}
    assert artifacts == {
        "weights.bin": ("file", 200),
        "raw.bin": ("bytes", 3),
        "eval.json": ("json", len(b'{\n  "auc": 0.7\n}')),
        "notes.txt": ("text", 9),
        "plots/a.txt": ("file", 1),
        "plots/sub/b.txt": ("file", 2),
    }
    stored = {a.name: a.digest for a in detail.artifacts}
    assert world.ws.artifacts.get_bytes(stored["weights.bin"]) == weights.read_bytes()
    own = [e for e in detail.inputs if str(e.target) == f"run:{run.id}"]
    inputs = {(e.source.kind, e.source.id) for e in own}
    assert inputs == {("table_version", "flights@0"), ("table_version", "airports@0")}
    assert detail.params == {"lr": "0.1"}
    assert [r.rank for r in detail.resources] == [0]  # this process's use, on both
    assert detail.resources[0].wall_seconds >= 0 and detail.resources[0].peak_rss_bytes > 0
    assert same(detail, world.ws.runs.get(run.id))
    with pytest.raises(ConfigError, match="has ended"):
        run.log_artifact(b"late", "late.bin")


def test_a_failed_block_keeps_its_traceback_as_an_artifact(client, backend):
    with pytest.raises(KeyError), client.start_run(f"trace-{backend}"):
        raise KeyError("missing column")
    run_id = client.runs(experiment=f"trace-{backend}").items[0].id
    detail = client.run(run_id)
    assert detail.status == "failed" and detail.error == "KeyError: 'missing column'"
    assert [a.name for a in detail.artifacts] == ["traceback.txt"]


# -- more reads: quality, profiles, features, pipelines, deployments, monitoring, cards -----


def test_table_version_quality_and_profile(client, world):
    from plinth.errors import VersionNotFoundError
    from plinth.quality.profiles import profile_version

    assert same(client.table_version("flights"), world.ws.lake.version("flights"))
    assert same(client.table_version("flights", 0), world.ws.lake.version("flights", 0))
    with pytest.raises(VersionNotFoundError, match="Table 'flights' has no version 9"):
        client.table_version("flights", 9)
    assert same(client.table_quality("flights"), world.ws.quality.results("flights"))
    with pytest.raises(TableNotFoundError):
        client.table_quality("nope")
    profile = client.table_profile("flights", 0)
    assert same(profile, profile_version(world.ws.lake, "flights", 0))
    assert profile["row_count"] == 3 and profile["columns"]["delay"]["nulls"] == 1
    assert client.table_profile("flights")["row_count"] == 4  # the latest version
    with pytest.raises(TableNotFoundError):
        client.table_profile("nope")


def test_feature_views_and_one_view(client, world):
    views = client.feature_views()
    assert [(v.name, v.version) for v in views] == [("delays", 1)]
    assert same(views, world.ws.features.view_infos())
    one = client.feature_view("delays")
    assert same(one, world.ws.features.view_info("delays"))
    assert one.spec["source"] == "flights" and one.watermark is None
    with pytest.raises(NotFoundError, match="Unknown feature view 'nope'"):
        client.feature_view("nope")


def test_feature_definitions_equal_the_service(client, world):
    found = client.feature_definitions()
    assert found == world.ws.features.definitions()
    assert [(kind, d.name, v) for kind, d, v in found] == [
        ("entity", "id", 1), ("view", "delays", 1), ("service", "delay_svc", 1),
    ]  # fmt: skip
    assert found[2][1].features == ("delays:delay",)
    view = found[1][1]
    assert view.entities[0] == found[0][1] and dict(view.features) == {"delay": "delay"}


def test_compare_runs_equals_the_service(client, world):
    a, b = world.run_ids[0], world.run_ids[1]
    table = client.compare_runs([a, b, a])
    assert same(table, world.ws.runs.compare([a, b]))
    assert table.run_ids == [a, b] and "param:lr" in table.to_dict()["differs"]
    with pytest.raises(RunNotFoundError):
        client.compare_runs([a, "run_nope"])
    with pytest.raises(ConfigError, match="No run ids"):
        client.compare_runs([])


def test_plot_runs_writes_the_same_chart(client, world, tmp_path):
    a, b = world.run_ids[0], world.run_ids[1]
    path = client.plot_runs([a, b], ["loss"], tmp_path / "mine.html", max_points=50)
    expected = world.ws.runs.plot([a, b], ["loss"], tmp_path / "theirs.html", max_points=50)
    assert undated(path.read_text()) == undated(expected.read_text()) and a in path.read_text()
    with pytest.raises(NotFoundError, match="None of the runs has the metric 'nope'"):
        client.plot_runs([a], ["nope"], tmp_path / "x.html")


def test_pipeline_run_detail(client, world):
    summary = client.pipeline_runs(5)[0]
    detail = client.pipeline_run(summary.id)
    assert same(detail, world.ws.pipelines.get(summary.id))
    assert detail.steps and {s.status for s in detail.steps} <= {"succeeded", "cached"}
    assert same(client.pipeline_runs(5, pipeline=summary.pipeline), [summary])
    assert client.pipeline_runs(5, pipeline="other") == []
    with pytest.raises(NotFoundError):
        client.pipeline_run("prun_nope")


def test_pipeline_step_logs(client, world):
    run_id = world.ws.pipelines.runs(limit=1)[0].id
    text = client.pipeline_log(run_id, "numbers")
    assert text == world.ws.pipelines.log(run_id, "numbers") and "making 5 numbers" in text
    assert client.pipeline_log(run_id[:12], "total") == ""
    with pytest.raises(NotFoundError, match="has no step 'nope'"):
        client.pipeline_log(run_id, "nope")
    with pytest.raises(NotFoundError):
        client.pipeline_log("prun_nope", "numbers")


def test_deployment_history_and_stats(client, world):
    from plinth.monitoring.service import deployment_stats
    from plinth.serving.deployments import DeploymentNotFoundError

    assert same(client.deployment("clf"), world.ws.deployments.get("clf"))
    history = client.deployment_history("clf")
    assert same(history, world.ws.deployments.history("clf")) and history[0].revision == 1
    stats = client.deployment_stats("clf")
    assert same(stats, deployment_stats(world.ws, "clf"))
    assert (stats["deployment"], stats["model"], stats["requests"]) == ("clf", "clf", 0)
    with pytest.raises(DeploymentNotFoundError):
        client.deployment("nope")
    with pytest.raises(DeploymentNotFoundError):
        client.deployment_stats("nope")


def test_drift_that_cannot_be_computed_is_the_same_error(client, world):
    import re

    from plinth.errors import PlinthError
    from plinth.monitoring.service import log_drift

    with pytest.raises(PlinthError) as local:
        log_drift(world.ws, "clf@champion", window="1d")
    with pytest.raises(type(local.value), match=re.escape(str(local.value)[:40])):
        client.drift("clf@champion", "1d")


def test_one_alert_with_its_events(client, world):
    from plinth.monitoring.alerts import AlertManager, AlertNotFoundError

    manager = AlertManager(world.ws)
    first = manager.alerts()[0]
    detail = client.alert(first.id)
    assert same(detail.alert, manager.get(first.id))
    assert same(detail.events, manager.history(first.id))
    assert [e.kind for e in detail.events][:1] == ["fired"]
    assert detail.to_dict()["events"][0]["kind"] == "fired"
    with pytest.raises(AlertNotFoundError):
        client.alert(99999)


def test_model_card_and_gate_decisions(client, world):
    from plinth.registry.gates import decisions

    card = client.model_card("clf", 1)
    assert (card.name, card.version) == ("clf", 1)
    assert card.markdown() == world.ws.models.card("clf:1").markdown()
    assert client.model_card("clf").version == 2
    assert same(client.gate_decisions("clf"), decisions(world.ws, "clf"))
    with pytest.raises(ModelNotFoundError):
        client.model_card("nope")
    with pytest.raises(ModelNotFoundError):
        client.gate_decisions("nope")


def test_remove_alias_with_a_reason(client, backend, world):
    alias = f"gone-{backend}"
    client.set_alias("clf", alias, 2)
    removed = client.remove_alias("clf", alias, reason="retired")
    assert (removed.action, removed.reason, removed.previous_version) == ("remove", "retired", 2)
    assert alias not in client.model("clf").aliases


# -- administration (tokens, roles) and cost reports (waste, prices, budgets) --------------


def test_tokens_create_show_list_and_revoke(client, backend, world):
    from plinth.catalog.audit import events
    from plinth.governance.tokens import get_token, list_tokens

    new = client.create_token(f"ci-{backend}", role="viewer", expires="30d")
    info = new.info
    assert new.secret.startswith("plt_") and new.secret not in repr(new)
    assert (info.owner, info.created_by, info.status()) == (USER, USER, "active")
    assert same(client.token(info.id), get_token(world.ws, info.id))
    assert info.id in [t.id for t in client.tokens()]
    assert [t.id for t in client.tokens()] == [t.id for t in list_tokens(world.ws)]
    assert ("token:" + info.id, "viewer") in [(b.subject, b.role) for b in client.roles().bindings]
    if backend == "remote":  # the secret works at once, and acts with the token's own role
        from plinth.client import RemoteClient

        with RemoteClient(world.server.url, new.secret) as ci:
            assert ci.whoami().role == "viewer"
    revoked = client.revoke_token(info.id)
    assert revoked.status() == "revoked" and same(revoked, get_token(world.ws, info.id))
    assert same(client.revoke_token(info.id), revoked)  # twice: unchanged
    assert info.id not in [t.id for t in client.tokens(include_revoked=False)]
    assert "token:" + info.id not in [b.subject for b in client.roles().bindings]
    audited = events(world.ws, resource=f"token:{info.id}")
    assert [(e.action, e.actor) for e in audited] == [
        ("token.revoke", USER), ("token.create", USER)]  # fmt: skip
    assert new.secret not in str([e.to_dict() for e in audited])


def test_bad_token_requests_are_the_local_errors(client):
    with pytest.raises(ConfigError, match="'soon' is not a token lifetime"):
        client.create_token("ci", expires="soon")
    with pytest.raises(ConfigError, match="'boss' is not a role"):
        client.create_token("ci", role="boss")
    with pytest.raises(NotFoundError, match="No token has the id 'tok_nope'"):
        client.token("tok_nope")
    with pytest.raises(NotFoundError, match="No token has the id 'tok_nope'"):
        client.revoke_token("tok_nope")


def test_roles_grant_list_and_revoke(client, backend, world):
    from plinth.catalog.audit import events
    from plinth.governance.roles import role_listing

    subject = f"ana-{backend}"
    granted = client.grant_role(subject, "deployer")
    assert (granted.project, granted.subject, granted.role, granted.granted_by) == (
        "default", subject, "deployer", USER)  # fmt: skip
    listing = client.roles()
    assert same(listing, role_listing(world.ws))
    assert listing.implicit == {"project": "default", "subject": USER, "role": "admin"}
    assert same(client.roles("default"), role_listing(world.ws, project="default"))
    assert client.grant_role(subject, "viewer").role == "viewer"  # replaces the role
    removed = client.revoke_role(subject)
    assert removed.role == "viewer" and subject not in [b.subject for b in client.roles().bindings]
    with pytest.raises(NotFoundError, match=f"'{subject}' holds no role in project 'default'"):
        client.revoke_role(subject)
    with pytest.raises(ConfigError, match="'boss' is not a role"):
        client.grant_role(subject, "boss")
    with pytest.raises(NotFoundError, match="No token has the id 'tok_nope'"):
        client.grant_role("token:tok_nope", "viewer")
    audited = events(world.ws, resource=f"role:default/{subject}")
    assert [(e.action, e.actor) for e in audited] == [
        ("role.revoke", USER), ("role.grant", USER), ("role.grant", USER)]  # fmt: skip


def test_waste_prices_and_budgets_equal_the_services(client, world):
    from plinth._core.clock import utcnow
    from plinth.cost.budgets import evaluate_budgets
    from plinth.cost.prices import prices_for
    from plinth.cost.waste import waste_report

    now = utcnow()
    assert same(client.waste(until=now), waste_report(world.ws, now=now))
    assert client.waste(until=now).to_dict() == waste_report(world.ws, now=now).to_dict()
    assert client.prices().to_dict() == prices_for(world.settings).to_dict()
    assert client.prices().cpu_core_hour == prices_for(world.settings).cpu_core_hour
    assert client.evaluate_budgets() == evaluate_budgets(world.ws) == []  # none set


def test_a_viewer_is_forbidden_to_administer(backend, world):
    if backend == "local":
        pytest.skip("N/A locally: a local client acts as the workspace's user (admin here).")
    from plinth.client import RemoteClient
    from plinth.governance.access import Forbidden
    from plinth.governance.tokens import list_tokens

    before = [t.id for t in list_tokens(world.ws)]
    with RemoteClient(world.server.url, world.viewer_token) as viewer:
        assert viewer.prices().to_dict() and viewer.waste().items == []  # reading is allowed
        for call in (
            lambda: viewer.tokens(),
            lambda: viewer.roles(),
            lambda: viewer.create_token("mine", role="admin"),
            lambda: viewer.revoke_token(before[0]),
            lambda: viewer.grant_role("ana", "admin"),
            lambda: viewer.revoke_role("ana"),
            lambda: viewer.evaluate_budgets(),
        ):
            with pytest.raises(Forbidden, match="may not"):
                call()
    assert [t.id for t in list_tokens(world.ws)] == before


def test_a_token_cannot_reach_further_than_its_creator(backend, world):
    if backend == "local":
        pytest.skip("N/A locally: the catalog's own credentials administer every project.")
    from plinth.client import RemoteClient
    from plinth.governance.access import Forbidden
    from plinth.governance.roles import grant, list_bindings

    grant(world.ws, "bob", "admin", project="other")
    with RemoteClient(world.server.url, world.admin_token) as admin:
        with pytest.raises(Forbidden, match="may not tokens:admin in project 'other'"):
            admin.grant_role("ana", "viewer", project="other")
        with pytest.raises(Forbidden, match="may not tokens:admin in project 'other'"):
            admin.create_token("ci", role="viewer", project="other")
        with pytest.raises(Forbidden, match="may not tokens:admin in project 'other'"):
            admin.create_token("as-bob", owner="bob")  # bob's token would be admin of 'other'
        with pytest.raises(Forbidden, match="may not tokens:admin in project 'other'"):
            admin.revoke_role("bob", project="other")
        carol = admin.create_token("as-carol", owner="carol", expires="never")
        assert (carol.info.owner, carol.info.created_by, carol.info.expires_at) == (
            "carol", USER, None)  # fmt: skip
        admin.revoke_token(carol.info.id)
    assert ("other", "bob", "admin") in [(b.project, b.subject, b.role)
                                         for b in list_bindings(world.ws)]  # fmt: skip


def test_revoking_the_callers_own_token_works_as_locally(backend, world):
    if backend == "local":
        pytest.skip("N/A locally: no credentials are involved.")
    from plinth.client import RemoteClient
    from plinth.governance.access import Unauthenticated
    from plinth.governance.tokens import create_token

    own = create_token(world.ws, "last-admin", owner="dora", role="admin")
    with RemoteClient(world.server.url, own.secret) as dora:
        assert dora.whoami().role == "admin"
        assert dora.revoke_token(own.info.id).status() == "revoked"
        with pytest.raises(Unauthenticated, match="was revoked"):
            dora.whoami()


# -- definitions: data contracts and feature definitions -----------------------------------


def test_apply_contract_then_list_and_show(client, backend, world):
    table = f"planned_{backend}"  # no such table yet: a contract may come first
    first = client.apply_contract(f"table: {table}\ncolumns:\n  a: {{not_null: true}}\n")
    assert (first.table, first.version, first.changed) == (table, 1, True)
    again = client.apply_contract(first.contract)
    assert (again.version, again.changed) == (1, False)
    second = client.apply_contract(f"table: {table}\ncolumns:\n  a: {{min: 0}}\n", "c.yaml")
    assert (second.version, second.changed, second.origin) == (2, True, "c.yaml")
    assert same(client.contracts(), world.ws.quality.contracts())
    assert table in [c.table for c in client.contracts()]
    assert same(client.contract(table, 1), world.ws.quality.contract(table, 1))
    assert client.contract(table).contract.spec() == second.contract.spec()
    events = client.audit(f"contract:{table}", action="contract.apply")
    assert [(e.resource, e.actor) for e in events] == [
        (f"contract:{table}@2", USER), (f"contract:{table}@1", USER),
    ]  # fmt: skip


def test_a_bad_or_missing_contract_is_the_same_error(client, tmp_path):
    from plinth.errors import ContractError

    with pytest.raises(ContractError, match="names columns the table does not have"):
        client.apply_contract("table: flights\ncolumns:\n  nope: {min: 0}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("table: flights\ncolumns:\n  delay: {minimum: 0}\n")
    with pytest.raises(ContractError, match=r"bad.yaml is not a valid contract: line 3"):
        client.apply_contract(bad)
    with pytest.raises(NotFoundError, match=r"Table 'airports' has no contract\."):
        client.contract("airports")
    with pytest.raises(NotFoundError, match="has no contract version 7"):
        client.contract("flights", 7)
    assert "flights" not in [c.table for c in client.contracts()]  # nothing was recorded


def test_apply_features_unchanged_and_the_same_errors(client, world):
    import plinth

    view = plinth.FeatureView(
        "delays", source="flights", entities=[plinth.Entity("id")], timestamp=None,
        features=["delay"],
    )  # fmt: skip
    changes = client.apply_features([view, plinth.FeatureService("delay_svc", ["delays:delay"])])
    assert [(c.kind, c.name, c.version, c.status) for c in changes] == [
        ("entity", "id", 1, "unchanged"), ("view", "delays", 1, "unchanged"),
        ("service", "delay_svc", 1, "unchanged"),
    ]  # fmt: skip
    stray = plinth.FeatureView(
        "strays", source="nope", entities=[plinth.Entity("id")], timestamp=None, features=["x"]
    )
    with pytest.raises(ConfigError, match="view 'strays' reads table 'nope', which does not"):
        client.apply_features([stray])
    with pytest.raises(ConfigError, match="does not exist"):
        client.apply_features("no/such/features.py")
    assert client.feature_definitions() == world.ws.features.definitions()


def test_a_viewer_token_is_forbidden_to_apply_definitions(backend, world):
    if backend == "local":
        pytest.skip("N/A locally: a local client acts as the workspace's user (admin here).")
    import plinth
    from plinth.client import RemoteClient
    from plinth.governance.access import Forbidden

    with RemoteClient(world.server.url, world.viewer_token) as viewer:
        with pytest.raises(Forbidden, match="may not tables:write"):
            viewer.apply_contract("table: viewer_table\n")
        with pytest.raises(Forbidden, match="may not features:write"):
            viewer.apply_features([plinth.Entity("viewer_entity")])
        assert viewer.contracts() == world.ws.quality.contracts()  # reading is allowed
    assert world.ws.quality.contract("viewer_table") is None


# -- models through the server: registering, alias history, diff, export ------------------


def test_register_model_and_log_model_on_a_run(client, backend, world):
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    name = f"reg-{backend}"
    info = client.register_model(model, name, signature=None, tags={"k": "v"})
    assert (info.version, info.flavor, info.signature) == (1, "sklearn", None)
    assert same(client.model_version(name, 1), world.ws.models.get(f"{name}:1"))
    with client.start_run("reg") as run:
        run.log_metric("auc", 0.8)
        second = run.log_model(model, name, example=frame.head(2))
    assert (second.version, second.run_id, second.metrics) == (2, run.id, {"auc": 0.8})
    assert second.signature.describe_inputs() == ["x: float (float64)"]
    loaded = world.ws.models.load(f"{name}:2")
    assert np.array_equal(loaded.predict(frame), model.predict(frame))
    with pytest.raises(RunNotFoundError):
        client.register_model(model, name, run="run_nope")


def test_alias_history_and_diff_equal_the_service(client, world):
    assert same(client.alias_history("clf"), world.ws.models.alias_history("clf"))
    history = world.ws.models.alias_history("clf", "champion")
    assert same(client.alias_history("clf", "champion"), history)
    diff = world.ws.models.diff("clf:1", "clf@champion")
    assert same(client.diff_models("clf:1", "clf@champion"), diff)
    assert same(client.diff_models("clf", "clf:1"), world.ws.models.diff("clf", "clf:1"))
    with pytest.raises(ModelNotFoundError):
        client.alias_history("ghost")
    with pytest.raises(ModelNotFoundError):
        client.diff_models("clf:1", "clf:99")


def test_export_model_writes_the_verified_files(client, world, tmp_path):
    path = client.export_model("clf", "champion", tmp_path / "got")
    expected = world.ws.models.export("clf:1", tmp_path / "want")
    names = sorted(p.name for p in expected.iterdir())
    assert sorted(p.name for p in path.iterdir()) == names and "manifest.json" in names
    assert all((path / n).read_bytes() == (expected / n).read_bytes() for n in names)
    with pytest.raises(ModelNotFoundError):
        client.export_model("clf", 99, tmp_path / "none")
