"""``plinth serve`` as a real uvicorn process: an unchanged Triton client, graceful shutdown
with every answer logged, several workers, the load tester and the capacity plan."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import plinth
from plinth.serving.loadgen import wait_ready
from tests.serving.conftest import expected

KEYS = [0, 1, 2, 3, 4]
XS = [0.5, -1.0, 0.25, 2.0, 0.0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A ``plinth serve`` subprocess on a free port."""

    def __init__(self, home: Path, *args: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PLINTH_HOME": str(home), "PLINTH_USER": "tester"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plinth.cli.main",
                "serve",
                "risk@champion",
                "--port",
                str(self.port),
                "--reload-interval",
                "0.2",
                *args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_ready(self.base, timeout_s=90)

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then wait; uvicorn re-raises the signal once it has shut down cleanly,
        so a graceful exit reads as -SIGTERM (the log counts below prove it was graceful)."""
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        code = self.process.returncode
        return (0 if code == -signal.SIGTERM else code), output


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
        code, output = server.stop()
    assert code == 0, output


def test_graceful_shutdown_logs_every_answer(ws, home):
    server = Server(home)
    answered = 0
    for i in range(60):
        reply = server.post(
            "/v1/models/risk/predict", {"records": [{"k": i % 5, "x": float(i)}] * (1 + i % 3)}
        )
        answered += len(reply["predictions"])
    code, output = server.stop()
    assert code == 0, output
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
        code, output = server.stop()
    assert code == 0, output
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
