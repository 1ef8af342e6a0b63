"""The inference API in process: predictions, online features, checks, OIP v2, metrics,
batching, overload, readiness, prediction logging."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from tests.serving.conftest import expected

KEYS = [0, 1, 2, 3, 4, 0]
XS = [0.5, -1.0, 0.25, 2.0, 0.0, 1.5]


def _records(keys: list[int] = KEYS, xs: list[float] = XS) -> dict[str, Any]:
    return {"records": [{"k": k, "x": x} for k, x in zip(keys, xs, strict=True)]}


def test_entity_keys_fetch_online_features_and_match_the_model(ws, harness):
    async def body(client):
        one = await client.post("/v1/models/risk/predict", json=_records())
        cols = await client.post("/v1/models/risk/predict", json={"columns": {"k": KEYS, "x": XS}})
        return one, cols

    one, cols = harness().run(body)
    assert one.status_code == 200, one.text
    data = one.json()
    assert data["model"] == "risk" and data["version"] == 1 and data["route"] == "primary"
    np.testing.assert_allclose(data["predictions"], expected(ws, 1, KEYS, XS), rtol=1e-9)
    assert cols.json()["predictions"] == data["predictions"]
    assert "predict;dur=" in one.headers["server-timing"]
    assert one.headers["x-request-id"]


def test_request_time_values_win_over_online_ones(ws, harness):
    async def body(client):
        return await client.post(
            "/v1/models/risk/predict", json={"records": [{"k": 2, "x": 1.0, "scores__score": 9.0}]}
        )

    answer = harness().run(body)
    model = ws.models.load("risk:1")
    import pandas as pd

    want = model.predict(pd.DataFrame({"x": [1.0], "scores__score": [9.0]}))
    assert answer.json()["predictions"] == pytest.approx(list(want))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"records": [{"x": 1.0}]}, "'k'"),  # entity key missing
        ({"records": [{"k": 1}]}, "'x'"),  # model input missing
        ({"records": [{"k": 1, "x": 1.0, "y": 2}]}, "'y'"),  # extra field
        ({"records": [{"k": 1, "x": "high"}]}, "'x'"),  # mistyped field
        ({"records": [{"k": 1, "x": True}]}, "'x'"),  # a boolean is not a float
        ({"columns": {"k": [1, 2], "x": [1.0]}}, "lengths"),
        ({"records": []}, "no rows"),
    ],
)
def test_bad_input_is_422_naming_the_field(harness, payload, field):
    async def body(client):
        return await client.post("/v1/models/risk/predict", json=payload)

    answer = harness().run(body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert field in error["message"] and error["type"] == "SchemaMismatchError"


def test_malformed_json_unknown_model_and_version(harness):
    async def body(client):
        return (
            await client.post("/v1/models/risk/predict", content=b"{not json"),
            await client.post("/v1/models/nope/predict", json=_records()),
            await client.post("/v1/models/risk/versions/9/predict", json=_records()),
            await client.post("/v2/models/nope/infer", json={"inputs": []}),
        )

    bad_json, unknown, version, oip_unknown = harness().run(body)
    assert bad_json.status_code == 422 and "not valid JSON" in bad_json.json()["error"]["message"]
    assert unknown.status_code == 404 and "does not serve model 'nope'" in unknown.text
    assert version.status_code == 404 and "Version 9" in version.text
    assert oip_unknown.status_code == 404 and set(oip_unknown.json()) == {"error"}


def test_body_over_the_limit_is_413_before_parsing(harness):
    async def body(client):
        big = b'{"records": [' + b"1," * 1000 + b"1]}"
        return await client.post("/v1/models/risk/predict", content=big)

    answer = harness(max_body_bytes=1024).run(body)
    assert answer.status_code == 413
    assert "limit is 1,024" in answer.json()["error"]["message"]


def test_oip_v2_health_metadata_and_infer(ws, harness):
    async def body(client):
        live = await client.get("/v2/health/live")
        ready = await client.get("/v2/health/ready")
        meta = await client.get("/v2/models/risk")
        model_ready = await client.get("/v2/models/risk/ready")
        server = await client.get("/v2")
        infer = await client.post(
            "/v2/models/risk/infer",
            json={
                "id": "abc",
                "inputs": [
                    {"name": "k", "shape": [len(KEYS)], "datatype": "INT64", "data": KEYS},
                    {"name": "x", "shape": [len(XS), 1], "datatype": "FP64", "data": XS},
                ],
            },
        )
        version = await client.post(
            "/v2/models/risk/versions/1/infer",
            json={"inputs": [{"name": "k", "shape": [1], "datatype": "INT64", "data": [1]}]},
        )
        return live, ready, meta, model_ready, server, infer, version

    live, ready, meta, model_ready, server, infer, version = harness().run(body)
    assert live.json() == {"live": True} and ready.status_code == 200
    assert model_ready.status_code == 200 and server.json()["name"] == "plinth"
    described = meta.json()
    assert described["name"] == "risk" and described["versions"] == ["1"]
    assert {i["name"]: i["datatype"] for i in described["inputs"]} == {"x": "FP64", "k": "INT64"}
    out = infer.json()
    assert out["id"] == "abc" and out["model_version"] == "1"
    assert out["outputs"][0]["shape"] == [len(KEYS)] and out["outputs"][0]["datatype"] == "FP64"
    np.testing.assert_allclose(out["outputs"][0]["data"], expected(ws, 1, KEYS, XS), rtol=1e-9)
    assert version.status_code == 422 and "'x'" in version.json()["error"]


def test_readiness_is_false_until_every_model_is_loaded(ws, harness):
    from plinth.serving.served import ServedVersion

    release = threading.Event()

    def slow_loader(workspace, info, options):
        release.wait(30)
        return ServedVersion.load(workspace, info, options)

    server = harness(loader=slow_loader)

    async def body(client):
        before = await client.get("/v2/health/ready")
        model_before = await client.get("/v2/models/risk/ready")
        predict_before = await client.post("/v1/models/risk/predict", json=_records())
        live = await client.get("/v2/health/live")
        release.set()
        for _ in range(500):
            if (await client.get("/v2/health/ready")).status_code == 200:
                break
            await asyncio.sleep(0.01)
        after = await client.get("/v2/health/ready")
        return before, model_before, predict_before, live, after

    before, model_before, predict_before, live, after = server.run(body, wait_ready=False)
    assert before.status_code == 503 and before.json()["ready"] is False
    assert model_before.status_code == 503
    assert predict_before.status_code == 503 and "still loading" in predict_before.text
    assert live.status_code == 200
    assert after.status_code == 200


def test_concurrent_requests_share_batches_and_get_their_own_answers(ws, harness):
    rng = np.random.default_rng(1)
    requests = [
        ([int(k) for k in rng.integers(0, 5, size=n)], rng.normal(size=n).round(3).tolist())
        for n in rng.integers(1, 6, size=120)
    ]

    async def body(client):
        return await asyncio.gather(
            *(client.post("/v1/models/risk/predict", json=_records(k, x)) for k, x in requests)
        )

    server = harness(max_batch_rows=32, max_wait_ms=5)
    answers = server.run(body)
    assert all(a.status_code == 200 for a in answers)
    for (keys, xs), answer in zip(requests, answers, strict=True):
        np.testing.assert_allclose(answer.json()["predictions"], expected(ws, 1, keys, xs))
    stats = server.state.tables["risk"].entries[0].served.batcher.stats
    assert stats.rows == sum(len(k) for k, _ in requests)
    assert stats.batches < len(requests)  # requests were batched together
    assert stats.last_batch_rows <= 32


def test_overload_answers_503_with_retry_after(ws, harness):
    from plinth.serving.served import ServedVersion

    def slow(workspace, info, options):
        served = ServedVersion.load(workspace, info, options)
        original = served.predictor

        class Slow:
            path = "general"

            def __call__(self, columns, n):
                import time

                time.sleep(0.05)
                return original(columns, n)

        served.predictor = Slow()
        served.batcher.offload = True
        return served

    async def body(client):
        return await asyncio.gather(
            *(client.post("/v1/models/risk/predict", json=_records([1], [0.1])) for _ in range(40))
        )

    answers = harness(loader=slow, max_queue_rows=4, batching=False).run(body)
    statuses = [a.status_code for a in answers]
    assert 200 in statuses and 503 in statuses
    refused = next(a for a in answers if a.status_code == 503)
    assert int(refused.headers["retry-after"]) >= 1
    assert "overloaded" in refused.json()["error"]["message"]


def test_metrics_endpoint_reports_requests_batches_and_lookups(harness):
    async def body(client):
        await client.post("/v1/models/risk/predict", json=_records())
        await client.post("/v1/models/risk/predict", json={"records": [{"k": 1}]})
        return await client.get("/metrics")

    text = harness().run(body).text
    assert (
        'plinth_requests_total{model="risk",route="primary",status="200",version="1"} 1.0' in text
    )
    assert 'plinth_rejected_requests_total{model="risk",reason="invalid"} 1.0' in text
    for series in (
        "plinth_request_seconds_bucket",
        "plinth_predict_seconds_bucket",
        "plinth_batch_rows_bucket",
        "plinth_feature_lookup_seconds_bucket",
        "plinth_queue_rows",
        "plinth_inflight_requests",
        "plinth_model_ready",
    ):
        assert series in text, series


def test_every_answer_is_logged_to_the_lake_with_inputs_and_features(ws, harness, monkeypatch):
    from plinth.quality.profiles import get_profile

    # The writer never profiles its appends (monitoring does), even when the server's
    # environment turns profiling on for ingests.
    monkeypatch.setenv("PLINTH_PROFILE_ON_INGEST", "true")

    async def body(client):
        answers = []
        for i in range(25):
            answers.append(
                await client.post(
                    "/v1/models/risk/predict",
                    json={**_records(), "as_of": "2024-01-02T00:00:00Z"},
                    headers={"x-request-id": f"req-{i}"},
                )
            )
        return answers

    answers = harness(log_predictions=True).run(body)
    assert all(a.status_code == 200 for a in answers)
    table = ws.lake.read("predictions__risk").to_pandas()
    assert len(table) == 25 * len(KEYS)
    assert set(table["request_id"]) == {f"req-{i}" for i in range(25)}
    first = table[table["request_id"] == "req-0"].sort_values("row")
    assert first["k"].tolist() == [str(k) for k in KEYS] and first["x"].tolist() == XS
    online = ws.features.online([{"k": k} for k in KEYS], "svc")
    assert first["scores__score"].tolist() == pytest.approx(
        [v["scores__score"] if v["scores__score"] is not None else np.nan for v in online.values],
        nan_ok=True,
    )
    np.testing.assert_allclose(first["prediction"], answers[0].json()["predictions"])
    assert (first["route"] == "primary").all() and (first["model_version"] == 1).all()
    assert str(first["event_time"].iloc[0]).startswith("2024-01-02")
    versions = [v.version for v in ws.lake.history("predictions__risk")]
    assert versions and all(
        get_profile(ws.catalog, "predictions__risk", v) is None for v in versions
    )


def test_a_request_with_every_feature_needs_no_entity_key(ws, harness):
    async def body(client):
        return await client.post(
            "/v1/models/risk/predict", json={"records": [{"x": 1.0, "scores__score": 0.3}]}
        )

    answer = harness().run(body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["server-timing"].endswith("features;dur=0.000")


def test_a_tensor_model_takes_rows_on_v1_and_one_tensor_on_oip(ws, harness):
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3))
    model = LinearRegression().fit(x, x @ np.array([1.0, -2.0, 0.5]))
    ws.models.register(model, "tensor", example=x[:5])
    rows = [[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]]
    want = model.predict(np.array(rows)).tolist()

    async def body(client):
        v1 = await client.post("/v1/models/tensor/predict", json={"inputs": rows})
        v2 = await client.post(
            "/v2/models/tensor/infer",
            json={
                "inputs": [
                    {
                        "name": "x",
                        "shape": [2, 3],
                        "datatype": "FP64",
                        "data": [v for r in rows for v in r],
                    }
                ]
            },
        )
        bad = await client.post("/v1/models/tensor/predict", json={"inputs": [["a", "b", "c"]]})
        return v1, v2, bad

    v1, v2, bad = harness(["tensor"]).run(body)
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == pytest.approx(want)
    assert v2.json()["outputs"][0]["data"] == pytest.approx(want)
    assert bad.status_code == 422
