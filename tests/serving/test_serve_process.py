"""``plinth serve`` as a real uvicorn process: an unchanged Triton client, graceful shutdown
with every answer logged, several workers, the load tester and the capacity plan."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import plinth
from plinth.serving.background import BackgroundServer
from tests.serving.conftest import expected

KEYS = [0, 1, 2, 3, 4]
XS = [0.5, -1.0, 0.25, 2.0, 0.0]


class Server(BackgroundServer):
    """``plinth serve risk@champion`` on a free port, polling the catalog every 0.2 s."""

    def __init__(self, home: Path, *args: str) -> None:
        workspace = plinth.Workspace(settings=plinth.Settings(home=home, user="tester"))
        try:
            super().__init__(workspace, ["risk@champion"], "--reload-interval", "0.2", *args)
        finally:
            workspace.close()

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())


@pytest.fixture
def home(ws: plinth.Workspace) -> Iterator[Path]:
    yield Path(ws.home)


def test_an_unchanged_triton_client_gets_correct_predictions(ws, home):
    import tritonclient.http as triton

    server = Server(home, "--no-log")
    try:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("risk")
        metadata = client.get_model_metadata("risk")
        assert metadata["name"] == "risk" and metadata["platform"] == "plinth_sklearn"
        k = triton.InferInput("k", [len(KEYS)], "INT64")
        k.set_data_from_numpy(np.array(KEYS, dtype=np.int64))  # binary tensor by default
        x = triton.InferInput("x", [len(XS)], "FP64")
        x.set_data_from_numpy(np.array(XS, dtype=np.float64), binary_data=False)
        want = expected(ws, 1, KEYS, XS)
        binary_out = client.infer(
            "risk", [k, x], outputs=[triton.InferRequestedOutput("prediction")]
        )
        np.testing.assert_allclose(binary_out.as_numpy("prediction"), want, rtol=1e-9)
        json_out = client.infer(
            "risk", [k, x], outputs=[triton.InferRequestedOutput("prediction", binary_data=False)]
        )
        np.testing.assert_allclose(json_out.as_numpy("prediction"), want, rtol=1e-9)
        assert json_out.get_response()["model_version"] == "1"
    finally:
        code = server.stop()
    assert code == 0


def test_graceful_shutdown_logs_every_answer(ws, home):
    server = Server(home)
    answered = 0
    for i in range(60):
        reply = server.post(
            "/v1/models/risk/predict", {"records": [{"k": i % 5, "x": float(i)}] * (1 + i % 3)}
        )
        answered += len(reply["predictions"])
    code = server.stop()
    assert code == 0
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as fresh:
        assert fresh.lake.read("predictions__risk").num_rows == answered


def test_two_workers_share_the_port_and_the_metrics(ws, home):
    server = Server(home, "--workers", "2")
    try:
        for i in range(40):
            server.post("/v1/models/risk/predict", {"records": [{"k": i % 5, "x": 1.0}]})
        with urllib.request.urlopen(server.base + "/metrics", timeout=10) as answer:
            text = answer.read().decode()
    finally:
        code = server.stop()
    assert code == 0
    line = next(
        ln for ln in text.splitlines() if ln.startswith("plinth_requests_total{") and '"200"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) == 40.0  # both workers' requests, summed
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as fresh:
        assert fresh.lake.read("predictions__risk").num_rows == 40


def test_loadtest_then_capacity_from_the_cli(ws, home, tmp_path):
    from plinth.cli.main import main

    server = Server(home, "--no-log")
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"records": [{"k": 1, "x": 0.5}]}))
    result = tmp_path / "load.json"
    try:
        code = main(
            [
                "loadtest",
                f"{server.base}/v1/models/risk/predict",
                "--body",
                str(body),
                "--rates",
                "20,50",
                "--duration",
                "1",
                "-o",
                str(result),
            ]
        )
    finally:
        server.stop()
    assert code == 0
    steps = json.loads(result.read_text())["steps"]
    assert [s["rate"] for s in steps] == [20.0, 50.0] and all(s["errors"] == 0 for s in steps)
    assert main(["capacity", str(result), "--qps", "500", "--p99-ms", "1000"]) == 0
