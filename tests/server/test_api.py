"""The control-plane REST API, area by area: answers, pagination, 404, 422 and aliases."""

from __future__ import annotations

from typing import Any

import pytest

from plinth.server.app import create_app
from tests.server.conftest import RUNS, call, token


def get(client: Any, path: str, **params: Any) -> Any:
    return client(lambda c: c.get(path, params=params))


def walk(client: Any, path: str, limit: int, **params: Any) -> list[Any]:
    """Every item of a list route, page by page."""
    items: list[Any] = []
    cursor = None
    for _ in range(1000):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = get(client, path, **query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the cursor never ran out")


def test_health_and_whoami(client):
    assert get(client, "/api/v1/health").json()["status"] == "ok"
    me = get(client, "/api/v1/whoami").json()
    assert me["subject"] == "tester" and "models:promote" in me["permissions"]


def test_tables_versions_quality_and_profile(client):
    names = [t["name"] for t in get(client, "/api/v1/tables").json()["items"]]
    assert {"obs", "scores", "sensors", "predictions__risk"} <= set(names)
    table = get(client, "/api/v1/tables/sensors").json()
    assert table["latest"]["version"] == 1 and table["contract"] is not None
    versions = get(client, "/api/v1/tables/sensors/versions").json()["items"]
    assert [v["version"] for v in versions] == [1, 0]
    quality = get(client, "/api/v1/tables/sensors/quality").json()["items"]
    assert quality and quality[0]["table"] == "sensors"
    profile = get(client, "/api/v1/tables/sensors/profile", version=0).json()
    assert profile["row_count"] == 3 and "v" in profile["columns"]
    assert get(client, "/api/v1/tables/nope").status_code == 404
    assert get(client, "/api/v1/tables/sensors/profile", version=9).status_code == 404


def test_features(client):
    views = get(client, "/api/v1/features/views").json()["items"]
    assert [v["name"] for v in views] == ["scores"]
    view = get(client, "/api/v1/features/views/scores").json()
    assert view["version"] >= 1
    missing = get(client, "/api/v1/features/views/nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"


def test_runs_list_filter_get_and_downsampled_metrics(client):
    runs = get(client, "/api/v1/runs", experiment="api-exp", sort="metrics.auc desc").json()
    aucs = [r["metrics"]["auc"] for r in runs["items"]]
    assert len(aucs) == RUNS and aucs == sorted(aucs, reverse=True)
    best = runs["items"][0]["id"]
    assert get(client, "/api/v1/runs", filter="metrics.auc > 0.65").json()["items"]
    detail = get(client, f"/api/v1/runs/{best}").json()
    assert detail["metric_summaries"]["loss"]["count"] == 50
    series = get(client, f"/api/v1/runs/{best}/metrics/loss", max_points=10).json()
    assert series["downsampled"] and len(series["steps"]) <= 10 and series["key"] == "loss"
    assert get(client, "/api/v1/runs/run_nope").status_code == 404
    assert get(client, f"/api/v1/runs/{best}/metrics/nope").status_code == 404
    bad = get(client, "/api/v1/runs", filter="metrics.auc >>> 1")
    assert bad.status_code == 400 and bad.json()["error"]["message"]


def test_runs_pagination_walks_every_run_once(client):
    everything = walk(client, "/api/v1/runs", limit=1)
    ids = [r["id"] for r in everything]
    assert len(ids) == len(set(ids)) >= RUNS
    all_at_once = get(client, "/api/v1/runs", limit=500).json()["items"]
    assert [r["id"] for r in all_at_once] == ids


@pytest.mark.parametrize(
    "path", ["/api/v1/tables", "/api/v1/tables/sensors/versions", "/api/v1/models",
             "/api/v1/audit", "/api/v1/alerts", "/api/v1/deployments"],
)  # fmt: skip
def test_every_list_paginates_without_gaps_or_repeats(client, path):
    whole = get(client, path, limit=500).json()["items"]
    assert walk(client, path, limit=1) == whole


def test_bad_paging_and_parameters_answer_4xx_json(client):
    for params, status in (
        ({"limit": 0}, 422),
        ({"limit": 501}, 422),
        ({"limit": "many"}, 422),
        ({"cursor": "!!!"}, 400),
        ({"cursor": "eyJvIjotMX0"}, 400),
    ):
        answer = get(client, "/api/v1/runs", **params)
        assert answer.status_code == status, (params, answer.text)
        assert set(answer.json()["error"]) >= {"type", "message", "hint"}
    assert get(client, "/api/v1/nothing/here").status_code == 404
    assert get(client, "/api/v1/cost", by="planet").status_code == 422


def test_tracking_a_run_over_http(client):
    created = client(lambda c: c.post("/api/v1/runs", json={"experiment": "remote",
                                                               "params": {"lr": 0.1}}))  # fmt: skip
    assert created.status_code == 201
    run_id = created.json()["id"]
    points = [{"key": "loss", "value": 1.0 / (i + 1)} for i in range(20)]
    points.append({"key": "auc", "value": 0.8, "step": 5, "timestamp": 1_700_000_000.0})
    logged = client(lambda c: c.post(f"/api/v1/runs/{run_id}/metrics", json={"points": points}))
    assert logged.status_code == 200 and logged.json()["count"] == 21
    more = client(lambda c: c.post(f"/api/v1/runs/{run_id}/metrics",
                                   json={"points": [{"key": "loss", "value": 0.01}]}))  # fmt: skip
    assert more.status_code == 200
    assert client(lambda c: c.post(f"/api/v1/runs/{run_id}/params",
                                   json={"params": {"depth": 3}})).status_code == 200  # fmt: skip
    clash = client(lambda c: c.post(f"/api/v1/runs/{run_id}/params", json={"params": {"lr": 9}}))
    assert clash.status_code == 409
    assert client(lambda c: c.post(f"/api/v1/runs/{run_id}/tags",
                                   json={"tags": {"team": "ops"}})).status_code == 200  # fmt: skip
    ended = client(lambda c: c.post(f"/api/v1/runs/{run_id}/end", json={"status": "finished"}))
    assert ended.status_code == 200
    run = ended.json()
    assert run["status"] == "finished" and run["params"] == {"lr": "0.1", "depth": "3"}
    assert run["tags"]["team"] == "ops"
    assert run["metric_summaries"]["loss"]["count"] == 21
    assert run["metric_summaries"]["loss"]["last_step"] == 20
    late = client(lambda c: c.post(f"/api/v1/runs/{run_id}/metrics",
                                   json={"points": [{"key": "loss", "value": 1}]}))  # fmt: skip
    assert late.status_code == 409
    empty = client(lambda c: c.post("/api/v1/runs", json={"experiment": ""}))
    assert empty.status_code == 422


def test_models_versions_cards_and_gates(client):
    models = get(client, "/api/v1/models").json()["items"]
    assert models[0]["name"] == "risk" and models[0]["aliases"] == {"champion": 1}
    model = get(client, "/api/v1/models/risk").json()
    assert [v["version"] for v in model["versions"]] == [2, 1]
    assert get(client, "/api/v1/models/risk/versions/2").json()["version"] == 2
    assert get(client, "/api/v1/models/risk/card", version=1).status_code == 200
    assert get(client, "/api/v1/models/risk/gates").json()["items"] == []
    assert get(client, "/api/v1/models/nope").status_code == 404
    assert get(client, "/api/v1/models/risk/versions/9").status_code == 404


def test_alias_moves_for_a_deployer_and_not_for_a_viewer(secured):
    app = create_app(secured)
    deployer, viewer = token(secured, "deployer"), token(secured, "viewer")

    def put(header: str, version: int) -> Any:
        return call(app, lambda c: c.put("/api/v1/models/risk/aliases/champion",
                                         json={"version": version, "reason": "better"},
                                         headers={"Authorization": header}))  # fmt: skip

    refused = put(viewer, 2)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "Forbidden"
    moved = put(deployer, 2)
    assert moved.status_code == 200 and moved.json()["changed"]
    assert secured.models.get("risk@champion").version == 2
    admin = {"Authorization": token(secured, "admin")}
    audit = call(app, lambda c: c.get("/api/v1/audit", params={"action": "model.alias"},
                                      headers=admin))  # fmt: skip
    events = audit.json()["items"]
    assert events and events[0]["actor"] == "deployer-user"
    removed = call(app, lambda c: c.delete("/api/v1/models/risk/aliases/champion",
                                           headers={"Authorization": deployer}))  # fmt: skip
    assert removed.status_code == 200
    assert put(deployer, 99).status_code == 404


def test_pipelines_deployments_monitoring_lineage_audit_cost(client):
    assert get(client, "/api/v1/pipelines/runs").json()["items"] == []
    assert get(client, "/api/v1/pipelines/runs/prun_nope").status_code == 404
    deployment = get(client, "/api/v1/deployments/risk").json()
    assert deployment["model"] == "risk" and deployment["revisions"]
    stats = get(client, "/api/v1/deployments/risk/stats").json()
    assert stats["requests"] == 200 and 1 <= stats["latency_ms"]["p50"] <= 20
    assert get(client, "/api/v1/deployments/nope").status_code == 404
    drift = get(client, "/api/v1/monitoring/risk@champion/drift", window="1d").json()
    assert drift["items"] and drift["items"][0]["rows"] == 200
    alerts = get(client, "/api/v1/alerts", state="firing").json()["items"]
    assert alerts and alerts[0]["rule"] == "drifty"
    alert = get(client, f"/api/v1/alerts/{alerts[0]['id']}").json()
    assert alert["events"]
    assert get(client, "/api/v1/alerts/999").status_code == 404
    graph = get(client, "/api/v1/lineage/risk@champion", direction="up").json()
    assert graph["nodes"]
    assert get(client, "/api/v1/lineage/model:nope").status_code == 404
    assert get(client, "/api/v1/audit").json()["items"]
    assert get(client, "/api/v1/audit/verify").status_code == 200
    assert get(client, "/api/v1/cost", by="run").status_code == 200
    assert get(client, "/api/v1/cost", since="yesterday-ish").status_code == 400
    window = get(client, "/api/v1/cost", by="run", since="1d", until="2026-01-02T00:00:00")
    assert window.status_code == 200, window.text
    assert (window.json()["since"], window.json()["until"]) == (
        "2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00",
    )  # fmt: skip
    for bad in ({"until": "soon"}, {"since": "2026-02-01", "until": "2026-01-01"}):
        answer = get(client, "/api/v1/cost", **bad)
        assert answer.status_code == 400 and answer.json()["error"]["type"] == "ConfigError"


def test_table_summary_feature_definitions_and_step_logs(client, ws, monkeypatch):
    from plinth.pipelines import run as run_pipeline
    from plinth.server.api import pipelines
    from tests.pipelines import flows

    summary = get(client, "/api/v1/tables/sensors/summary").json()
    assert (summary["version"], summary["reference_version"]) == (1, 0)
    assert [p["row_count"] for p in summary["volume"]] == [3, 5]
    assert get(client, "/api/v1/tables/sensors/summary", against=5).status_code == 404
    assert get(client, "/api/v1/tables/nope/summary").status_code == 404
    found = walk(client, "/api/v1/features/definitions", 1)
    assert ("view", "scores") in [(d["kind"], d["name"]) for d in found]
    assert all(isinstance(d["version"], int) for d in found)
    run_pipeline(flows.simple, {"n": 3}, ws=ws)
    run_id = ws.pipelines.runs(limit=1)[0].id
    log = get(client, f"/api/v1/pipelines/runs/{run_id}/steps/numbers/log").json()
    assert log == {"run_id": run_id, "step": "numbers", "log": "making 3 numbers\n"}
    assert get(client, f"/api/v1/pipelines/runs/{run_id}/steps/nope/log").status_code == 404
    monkeypatch.setattr(pipelines, "MAX_LOG_BYTES", 4)
    big = get(client, f"/api/v1/pipelines/runs/{run_id}/steps/numbers/log")
    assert big.status_code == 413 and big.json()["error"]["type"] == "LogTooLarge"


def test_the_remote_cli_routes_are_in_the_openapi_spec(client):
    paths = get(client, "/openapi.json").json()["paths"]
    for path in (
        "/api/v1/tables/{name}/summary",
        "/api/v1/features/definitions",
        "/api/v1/pipelines/runs/{run_id}/steps/{step}/log",
        "/api/v1/cost",
    ):
        assert "get" in paths[path], path
    cost = {p["name"] for p in paths["/api/v1/cost"]["get"]["parameters"]}
    assert cost >= {"by", "since", "until"}


def test_attached_ranks_record_their_usage_until_the_launcher_ends_the_run(client):
    def post(path: str, body: Any) -> Any:
        return client(lambda c: c.post(f"/api/v1{path}", json=body))

    body = {"experiment": "ddp", "launcher": "torchrun", "requested": {"nproc": 2}}
    run_id = post("/runs", body).json()["id"]
    usage = {"wall_seconds": 1.0, "cpu_seconds": 0.5, "peak_rss_bytes": 1024}
    refused = post(f"/runs/{run_id}/end", {"usage": usage, "rank": 1})
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "ConfigError"
    failed = post(f"/runs/{run_id}/end", {"status": "failed", "error": "rank 1 diverged",
                                          "usage": usage, "attached": True, "rank": 1})  # fmt: skip
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    late = post(f"/runs/{run_id}/end", {"usage": usage, "attached": True})  # rank 0, after
    assert late.status_code == 200 and late.json()["status"] == "failed"
    assert sorted(r["rank"] for r in late.json()["resources"]) == [0, 1]
    assert post(f"/runs/{run_id}/end", {"status": "failed"}).status_code == 200  # the launcher
    again = post(f"/runs/{run_id}/end", {"usage": usage, "attached": True, "rank": 1})
    assert again.status_code == 409
