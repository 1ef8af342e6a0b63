"""RemoteClient and RemoteRun against a scripted transport: retries, error mapping, batching."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from plinth._core.settings import Settings
from plinth.client import LocalClient, RemoteClient, ServerUnavailableError, connect
from plinth.errors import ConfigError, ModelNotFoundError, PlinthError
from plinth.governance.access import Forbidden


class Script:
    """A transport answering from a list of handlers, recording every request."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    def client(self, **options: Any) -> RemoteClient:
        transport = httpx.MockTransport(self)
        return RemoteClient("http://plinth.test", "plt_secret", transport=transport, **options)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("plinth.client.remote.time.sleep", lambda _: None)


WHOAMI = {"subject": "ana", "kind": "token", "roles": {"default": "viewer"},
          "project": "default", "permissions": ["models:read"]}  # fmt: skip


def test_reads_are_retried_on_connection_errors_and_503():
    script = Script(
        httpx.ConnectError("refused"),
        httpx.Response(503, headers={"Retry-After": "1"}),
        httpx.Response(200, json=WHOAMI),
    )
    me = script.client().whoami()
    assert (me.subject, me.role) == ("ana", "viewer")
    assert len(script.requests) == 3
    assert script.requests[0].headers["Authorization"] == "Bearer plt_secret"
    assert script.requests[0].url.path == "/api/v1/whoami"


def test_an_unreachable_server_names_the_url_and_writes_are_sent_once():
    script = Script(httpx.ConnectError("refused"))
    client = script.client(retries=3)
    with pytest.raises(ServerUnavailableError, match=r"http://plinth\.test"):
        client.models()
    assert len(script.requests) == 3
    script.requests.clear()
    with pytest.raises(ServerUnavailableError):
        client.set_alias("delay", "champion", 2)
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("status", "body", "expected", "text"),
    [
        (404, {"error": {"type": "ModelNotFoundError", "message": "No model 'x'.",
                         "hint": "List them."}}, ModelNotFoundError, "No model 'x'. List them."),
        (403, {"error": {"type": "Forbidden", "message": "No.", "hint": None}}, Forbidden, "No."),
        (422, {"error": {"type": "ValidationError", "message": "Bad field."}}, ConfigError,
         "Bad field."),
        (500, "oops", PlinthError, "answered 500"),
    ],
)  # fmt: skip
def test_error_answers_become_the_local_error_classes(status, body, expected, text):
    answer = (
        httpx.Response(status, json=body) if isinstance(body, dict) else
        httpx.Response(status, text=body)
    )  # fmt: skip
    with pytest.raises(expected) as info:
        Script(answer).client().model("x")
    assert text in str(info.value)


def test_a_url_that_is_not_http_is_refused():
    with pytest.raises(ConfigError, match="not an http"):
        RemoteClient("plinth.internal:8000")


def test_connect_picks_the_backend_from_the_url(tmp_path):
    local = connect(Settings(home=tmp_path / "ws"))
    assert isinstance(local, LocalClient)
    local.close()
    remote = connect(Settings(home=tmp_path / "ws", url="http://x:1", token="plt_t"))
    assert isinstance(remote, RemoteClient) and "plt_t" not in repr(remote)
    remote.close()


def _run_server(points: list[list[dict[str, Any]]], fail_first: int = 0) -> Script:
    state = {"fails": fail_first}

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/runs":
            return httpx.Response(201, json={"id": "run_1"})
        if path.endswith("/metrics"):
            if state["fails"]:
                state["fails"] -= 1
                return httpx.Response(503, json={"error": {"type": "X", "message": "busy"}})
            points.append(json.loads(request.content)["points"])
        return httpx.Response(200, json={"run_id": "run_1", "count": 0})

    return Script(answer)


def test_points_go_in_batches_by_size_and_on_end():
    sent: list[list[dict[str, Any]]] = []
    client = _run_server(sent).client()
    with client.start_run("demo", batch_size=100, interval_s=60) as run:
        for step in range(250):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metrics({"a": 1.0, "b": 2.0})
    assert [len(batch) for batch in sent] == [100, 100, 52]
    assert [p["step"] for p in sent[0][:3]] == [0, 1, 2]
    assert {(p["key"], p["step"]) for p in sent[2][-2:]} == {("a", 0), ("b", 0)}


def test_points_go_after_the_interval_without_a_flush():
    sent: list[list[dict[str, Any]]] = []
    run = _run_server(sent).client().start_run("demo", batch_size=1000, interval_s=0.05)
    run.log_metric("loss", 0.5)
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(b) for b in sent] == [1]
    run.end()


def test_a_batch_the_server_refuses_stays_buffered_and_goes_with_the_next():
    sent: list[list[dict[str, Any]]] = []
    run = _run_server(sent, fail_first=1).client().start_run("demo", batch_size=2, interval_s=60)
    run.log_metrics({"a": 1.0, "b": 2.0})  # a full batch: the send fails, the points stay
    assert sent == []
    run.log_metric("a", 3.0)
    run.end()
    assert [[(p["key"], p["step"]) for p in b] for b in sent] == [[("a", 0), ("b", 0)], [("a", 1)]]
    assert run.status == "finished"
    with pytest.raises(ConfigError, match="has ended"):
        run.log_metric("a", 4.0)
