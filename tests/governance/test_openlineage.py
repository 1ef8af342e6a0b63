"""OpenLineage run events: ingests, pipeline steps and training runs, to an HTTP endpoint (a real
local server) or a JSON-lines file; delivery failures never break the work."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import plinth
from plinth.errors import StepFailedError
from plinth.governance.openlineage import SCHEMA_URL, Emitter
from plinth.pipelines import run as run_pipeline
from tests.pipelines import flows


class Collector:
    """A local OpenLineage endpoint keeping every event it is sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/json"
                collector.events.append(json.loads(body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/lineage"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of(self, job: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["job"]["name"] == job]


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    yield found
    found.server.shutdown()
    found.server.server_close()


def workspace(tmp_path: Path, url: str) -> plinth.Workspace:
    settings = plinth.Settings(home=tmp_path / "ws", user="tester", openlineage_url=url)
    return plinth.Workspace(settings=settings)


def _csv(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "obs.csv"
    path.write_text("k,x\n1,0.5\n2,1.5\n")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _check_event(event: dict[str, Any]) -> None:
    assert event["schemaURL"] == SCHEMA_URL and event["producer"].startswith("https://")
    assert uuid.UUID(event["run"]["runId"])
    assert datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).tzinfo
    assert event["job"]["namespace"] == "plinth/default"


def test_an_ingest_emits_start_then_complete_with_the_file_hash(tmp_path, collector):
    path, digest = _csv(tmp_path)
    with workspace(tmp_path, collector.url) as ws:
        ws.lake.ingest(str(path), table="obs")
    start, complete = collector.of("ingest.obs")
    for event in (start, complete):
        _check_event(event)
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert start["eventTime"] <= complete["eventTime"]
    [source] = complete["inputs"]
    assert source["namespace"] == "file" and source["name"] == str(path)
    assert source["facets"]["version"]["datasetVersion"] == digest
    [table] = complete["outputs"]
    assert table["name"].endswith("storage/lake/obs")
    assert table["facets"]["version"]["datasetVersion"] == "0"
    assert [f["name"] for f in table["facets"]["schema"]["fields"]] == ["k", "x"]
    assert table["outputFacets"]["outputStatistics"]["rowCount"] == 2


def test_a_pipeline_emits_events_per_step_under_its_run(tmp_path, collector):
    with workspace(tmp_path, collector.url) as ws:
        result = run_pipeline(flows.simple, {"n": 3}, ws=ws)
    assert result.succeeded
    pipeline = collector.of("pipeline.simple")
    assert [e["eventType"] for e in pipeline] == ["START", "COMPLETE"]
    parent = pipeline[0]["run"]["runId"]
    for step in ("numbers", "total"):
        events = collector.of(f"simple.{step}")
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"], step
        for event in events:
            _check_event(event)
            assert event["run"]["facets"]["parent"]["run"]["runId"] == parent
            assert event["run"]["facets"]["parent"]["job"]["name"] == "pipeline.simple"
    made = collector.of("simple.numbers")[1]["outputs"][0]["name"]
    assert made.startswith("artifacts/sha256:")
    assert made in [d["name"] for d in collector.of("simple.total")[1]["inputs"]]


def test_a_failing_step_emits_fail_with_its_error(tmp_path, collector):
    with workspace(tmp_path, collector.url) as ws, pytest.raises(StepFailedError):
        run_pipeline(flows.failing, ws=ws)
    events = collector.of("failing.explode")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]  # one START over two attempts
    error = events[1]["run"]["facets"]["errorMessage"]
    assert "exploded on purpose" in error["message"] and error["programmingLanguage"] == "python"
    assert [e["eventType"] for e in collector.of("pipeline.failing")] == ["START", "FAIL"]
    assert not collector.of("failing.later")  # skipped steps never ran


def test_a_training_run_emits_start_and_complete_with_its_inputs(tmp_path, collector):
    with workspace(tmp_path, collector.url) as ws:
        ws.lake.ingest(pa.table({"x": [1.0, 2.0]}), table="feats")
        with ws.run("exp", params={"lr": 0.1}, capture=False) as run:
            run.use("feats@0")
            run.log_metric("loss", 0.5)
        with pytest.raises(RuntimeError), ws.run("exp", capture=False):
            raise RuntimeError("diverged")
    first, second = {}, {}
    for event in collector.of("train.exp"):
        _check_event(event)
        (first if event["run"]["facets"]["plinth"]["run_id"] == run.id else second)[
            event["eventType"]
        ] = event
    assert set(first) == {"START", "COMPLETE"} and set(second) == {"START", "FAIL"}
    assert first["START"]["run"]["facets"]["plinth"]["params"] == {"lr": "0.1"}
    [used] = first["COMPLETE"]["inputs"]
    assert (
        used["name"].endswith("lake/feats") and used["facets"]["version"]["datasetVersion"] == "0"
    )
    assert "diverged" in second["FAIL"]["run"]["facets"]["errorMessage"]["message"]


def test_a_file_target_gets_one_json_event_per_line(tmp_path):
    target = tmp_path / "lineage" / "events.jsonl"
    path, _ = _csv(tmp_path)
    with workspace(tmp_path, str(target)) as ws:
        ws.lake.ingest(str(path), table="obs")
        with ws.run("exp", capture=False):
            pass
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("ingest.obs", "START"),
        ("ingest.obs", "COMPLETE"),
        ("train.exp", "START"),
        ("train.exp", "COMPLETE"),
    ]


def test_concurrent_appends_keep_every_line_whole(tmp_path):
    target = tmp_path / "events.jsonl"
    emitter = Emitter(str(target))
    payload = "x" * 5000

    def write(n: int) -> None:
        for i in range(50):
            assert emitter.emit({"writer": n, "i": i, "payload": payload})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = target.read_text().splitlines()
    assert len(lines) == 200 and all(json.loads(line)["payload"] == payload for line in lines)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_endpoint_does_not_break_the_ingest(tmp_path, caplog):
    url = f"http://127.0.0.1:{_closed_port()}/api/v1/lineage"
    logs = caplog.at_level(logging.WARNING, "plinth.governance.openlineage")
    with logs, workspace(tmp_path, url) as ws:
        info = ws.lake.ingest(pa.table({"a": [1, 2]}), table="t")
        ws.lake.ingest(pa.table({"a": [3]}), table="t")
        assert ws.lake.version("t").version == 1 and info.row_count == 2
    assert any("OpenLineage" in r.getMessage() for r in caplog.records)


def test_an_endpoint_refusing_events_is_logged_not_raised(tmp_path, caplog):
    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(400)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        emitter = Emitter(f"http://127.0.0.1:{server.server_address[1]}/")
        with caplog.at_level(logging.WARNING, "plinth.governance.openlineage"):
            assert emitter.emit({"eventType": "START"}) is False
        assert "400" in caplog.text
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_url_nothing_is_imported(tmp_path):
    code = (
        "import sys, pyarrow as pa, plinth\n"
        f"ws = plinth.Workspace({str(tmp_path / 'ws')!r})\n"
        "ws.lake.ingest(pa.table({'a': [1]}), table='t')\n"
        "with ws.run('e', capture=False):\n    pass\n"
        "print('plinth.governance.openlineage' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
