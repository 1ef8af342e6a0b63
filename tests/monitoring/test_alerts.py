"""Alert rules (parsing, evaluation) and the alert manager (state, dedupe, actions)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from plinth.errors import ConfigError, NotFoundError
from plinth.monitoring.alerts import AlertManager, AlertNotFoundError
from plinth.monitoring.rules import (
    ConditionError,
    Rule,
    RuleSet,
    WebhookAction,
    parse_condition,
    parse_rules,
)
from plinth.pipelines import pipeline, step

T0 = datetime(2024, 6, 1, tzinfo=UTC)

# -- a tiny pipeline for the retrain action (steps run in worker processes that import this) --


@step
def make_numbers(n: int) -> list[int]:
    return list(range(n))


@step
def add_up(values: list[int]) -> int:
    return sum(values)


@pipeline
def retrain_ok(n: int = 3):
    return add_up(make_numbers(n))


@step
def blow_up(n: int) -> int:
    raise RuntimeError("retraining exploded on purpose")


@pipeline
def retrain_broken(n: int = 1):
    return blow_up(n)


RETRAIN_OK = f"{__name__}:retrain_ok"
RETRAIN_BROKEN = f"{__name__}:retrain_broken"


# -- a real HTTP receiver -------------------------------------------------------------------


class Receiver:
    """A local HTTP server answering with scripted status codes, recording every request."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def free_port_url() -> str:
    """A URL on a local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def rule_of(yaml_rule: str) -> Rule:
    return next(iter(parse_rules("rules:\n" + yaml_rule, "test.yaml")))


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# -- conditions -----------------------------------------------------------------------------


def test_and_binds_tighter_than_or_and_parentheses_group():
    facts = {"a": 2.0, "b": 0.0, "c": 0.0}
    assert parse_condition("a > 1 or b > 1 and c > 1").evaluate(facts).holds
    assert not parse_condition("(a > 1 or b > 1) and c > 1").evaluate(facts).holds
    assert parse_condition("b > 1 and c > 1 or a > 1").evaluate(facts).holds
    assert parse_condition("((a >= 2) and (b == 0 or c != 0))").evaluate(facts).holds
    assert parse_condition("a < 3 AND b <= -0.5e-1 OR c > 1").evaluate(facts).holds is False


def test_verdict_value_and_matched_come_from_the_comparisons_that_hold():
    verdict = parse_condition("drift.share >= 0.3 or drift.temp.psi > 0.25").evaluate(
        {"drift.share": 0.1, "drift.temp.psi": 0.41}
    )
    assert (verdict.holds, verdict.value, verdict.matched, verdict.missing) == (
        True, 0.41, ["drift.temp.psi"], [],
    )  # fmt: skip
    failing = parse_condition("x > 5 and y > 5").evaluate({"x": 1.0, "y": 9.0})
    assert (failing.holds, failing.value, failing.matched) == (False, 1.0, ["y"])


def test_wildcards_match_any_one_segment_and_report_the_worst_first():
    condition = parse_condition("drift.*.psi > 0.2")
    facts = {"drift.a.psi": 0.25, "drift.b.psi": 0.1, "drift.c.psi": 0.6, "drift.a.b.psi": 9.0}
    verdict = condition.evaluate(facts)
    assert verdict.holds and verdict.value == 0.6
    assert verdict.matched == ["drift.c.psi", "drift.a.psi"]  # not the two-segment fact
    assert not condition.evaluate({"drift.a.psi": 0.1, "drift.b.psi": 0.2}).holds
    assert parse_condition("*.rows < 10").evaluate({"x.rows": 50, "y.rows": 3}).matched == [
        "y.rows"
    ]
    assert condition.facts == ["drift.*.psi"]


def test_missing_facts_make_comparisons_false_never_raise():
    condition = parse_condition("a > 1 or drift.*.psi > 0.2 or b != 0")
    verdict = condition.evaluate({})
    assert (verdict.holds, verdict.value, verdict.matched) == (False, None, [])
    assert verdict.missing == ["a", "drift.*.psi", "b"]
    nan = parse_condition("a != 1").evaluate({"a": float("nan")})
    assert not nan.holds and nan.missing == ["a"]
    partial = parse_condition("a > 1 or b > 1").evaluate({"b": 3})
    assert partial.holds and partial.missing == ["a"]


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("a >", 4, "expected a number after '>'"),
        ("a > 1 and", 10, "expected a fact name or '('"),
        ("(a > 1 or b > 2", 16, "expected ')' to close the '(' at position 1"),
        ("a = 1", 3, "use '=='"),
        ("a > 1 b > 2", 7, "expected 'and', 'or'"),
        ("1 > a", 1, "expected a fact name"),
        ("a.b*.c > 1", 1, "is not a fact name"),
        ("a > x", 5, "expected a number after '>', found 'x'"),
        ("   ", 1, "the condition is empty"),
    ],
)
def test_condition_parse_errors_name_the_position(text, position, reason):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert isinstance(info.value, ConfigError)
    assert info.value.position == position
    assert f"at position {position}" in str(info.value) and reason in str(info.value)


# -- rules files ----------------------------------------------------------------------------

RULES = """\
rules:
  - name: weather-drift
    model: risk@champion
    when: drift.share >= 0.3 or drift.weather__temp.psi > 0.25
    severity: critical
    for: 2
    actions:
      - log
      - webhook: {url: "http://127.0.0.1:9/hook", retries: 1, timeout_s: 2, on_resolve: true}
      - retrain: {pipeline: "flows:train", params: {lr: 0.1}}
  - name: slow
    model: risk
    when: latency.p99 > 250
"""


def test_a_rules_file_parses_with_defaults():
    rules = parse_rules(RULES, "rules.yaml")
    assert rules.names == ["weather-drift", "slow"] and len(rules) == 2
    drift = rules.get("weather-drift")
    assert (drift.model_name, drift.severity, drift.for_, drift.window) == (
        "risk", "critical", 2, "1d",
    )  # fmt: skip
    assert [a.kind for a in drift.actions] == ["log", "webhook", "retrain"]
    webhook = drift.actions[1]
    assert isinstance(webhook, WebhookAction) and webhook.on_resolve and webhook.retries == 1
    assert drift.actions[2].params == {"lr": 0.1}
    slow = rules.get("slow")
    assert (slow.severity, slow.for_, slow.actions, slow.window_spec) == (
        "warning", 1, [], ("time", 86400.0),
    )  # fmt: skip
    assert [r.name for r in rules.for_model("risk")] == ["weather-drift", "slow"]
    with pytest.raises(NotFoundError, match="no rule called 'nope'"):
        rules.get("nope")
    assert len(parse_rules("", "empty.yaml")) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - name: a\n    model: m\n    when: x > 1\n    actions:\n"
            "      - log\n      - email: {to: ops}\n",
            ["line 7", "rule 'a', actions.1", "unknown action 'email'"],
        ),
        (
            "rules:\n  - name: a\n    model: m\n    when: x > 1\n  - name: b\n    model: m\n"
            "    when: x > 2\n  - name: a\n    model: m\n    when: x > 3\n",
            ["rules.yaml, line 8", "two rules are called 'a'"],
        ),
        (
            "rules:\n  - name: a\n    model: m\n    when: x > 1\n    window: 3 weeks\n",
            ["line 5", "rule 'a', window", "'3 weeks' is not a window"],
        ),
        (
            "rules:\n  - name: a\n    model: m\n    when: ''\n",
            ["line 4", "rule 'a', when", "the condition is empty"],
        ),
        (
            "rules:\n  - name: a\n    model: m\n\n    when: x > 1 and (y < 2\n",
            ["line 5", "rule 'a', when", "at position 17"],
        ),
        (
            "rules:\n  - name: a\n    model: m\n    when: x > 1\n    sevrity: high\n",
            ["line 5", "rule 'a', sevrity", "Extra inputs are not permitted"],
        ),
        (
            "rules:\n  - name: Bad Name\n    model: m\n    when: x > 1\n",
            ["line 2", "rule 'Bad Name', name", "is not a rule name"],
        ),
        (
            "rules:\n  - name: a\n    model: m\n    when: x > 1\n    for: 0\n    actions:\n"
            "      - webhook: {url: 'ftp://x'}\n",
            ["line 5", "rule 'a', for", "line 7", "actions.0.webhook.url"],
        ),
        ("rules:\n  - name: a\n    model: m\n    when: [x\n", ["rules.yaml, line 5", "YAML"]),
    ],
)
def test_rules_file_errors_name_the_file_line_rule_and_field(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_rules(text, "rules.yaml")
    message = str(info.value)
    assert "rules.yaml" in message
    for part in expected:
        assert part in message, message


def test_a_ruleset_refuses_duplicate_names_built_in_python():
    rule = Rule(name="a", model="m", when="x > 1")
    with pytest.raises(ConfigError, match="two rules are called 'a'"):
        RuleSet((rule, rule))


# -- the state machine ----------------------------------------------------------------------


def test_fires_once_then_deduplicates_then_resolves_then_opens_a_new_alert(ws, caplog):
    caplog.set_level(logging.INFO, logger="plinth.monitoring.alerts")
    manager = AlertManager(ws)
    rule = rule_of(
        "  - name: weather-drift\n    model: risk@champion\n"
        "    when: drift.share >= 0.3 or drift.weather__temp.psi > 0.25\n    actions: [log]\n"
    )
    high = {"drift.share": 0.1, "drift.weather__temp.psi": 0.41}

    assert manager.evaluate(rule, "risk", {"drift.share": 0.0}, now=T0).transition == "ok"
    fired = manager.evaluate(rule, "risk", high, now=T0 + timedelta(days=1))
    assert fired.transition == "fired" and [a.status for a in fired.actions] == ["ok"]
    alert = manager.get(fired.alert_id)
    assert alert.state == "firing" and alert.severity == "warning" and alert.value == 0.41
    assert alert.message == (
        "weather-drift on risk: drift.weather__temp.psi = 0.41 "
        "(drift.share >= 0.3 or drift.weather__temp.psi > 0.25)"
    )
    assert alert.details["matched"] == ["drift.weather__temp.psi"]
    assert alert.details["by"] == "tester"
    assert sum("weather-drift on risk" in r.getMessage() for r in caplog.records) >= 1

    again = manager.evaluate(rule, "risk", {"drift.share": 0.5}, now=T0 + timedelta(days=2))
    assert again.transition == "firing" and again.alert_id == fired.alert_id
    assert again.actions == []
    alert = manager.get(fired.alert_id)
    assert (alert.evaluations, alert.value) == (2, 0.5)
    assert alert.last_seen_at == T0 + timedelta(days=2) and alert.fired_at == T0 + timedelta(1)

    resolved = manager.evaluate(rule, "risk", {"drift.share": 0.1}, now=T0 + timedelta(days=3))
    assert resolved.transition == "resolved" and resolved.alert_id == fired.alert_id
    alert = manager.get(fired.alert_id)
    assert alert.state == "resolved" and alert.resolved_at == T0 + timedelta(days=3)
    events = manager.history(fired.alert_id)
    assert [(e.kind, e.action, e.status) for e in events] == [
        ("fired", None, None), ("action", "log", "ok"), ("resolved", None, None),
    ]  # fmt: skip
    assert manager.evaluate(rule, "risk", {}, now=T0 + timedelta(days=4)).transition == "ok"

    refired = manager.evaluate(rule, "risk", high, now=T0 + timedelta(days=5))
    assert refired.transition == "fired" and refired.alert_id != fired.alert_id
    listed = manager.alerts(rule="weather-drift")
    assert [a.id for a in listed] == [refired.alert_id, fired.alert_id]  # newest first
    assert [a.id for a in manager.alerts(state="resolved")] == [fired.alert_id]
    assert manager.alerts(model="other") == []
    assert listed[0].to_dict()["fired_at"] == (T0 + timedelta(days=5)).isoformat()
    with pytest.raises(AlertNotFoundError):
        manager.history(10_000)
    with pytest.raises(ConfigError, match="not an alert state"):
        manager.alerts(state="open")


def test_alerts_are_kept_per_rule_and_model(ws):
    manager = AlertManager(ws)
    rule = rule_of("  - name: r\n    model: risk\n    when: x > 1\n")
    first = manager.evaluate(rule, "risk", {"x": 2})
    other = manager.evaluate(rule, "other", {"x": 2})
    assert first.transition == other.transition == "fired"
    assert first.alert_id != other.alert_id
    assert manager.evaluate(rule, "risk", {"x": 0}).transition == "resolved"
    assert manager.get(other.alert_id).state == "firing"


def test_for_two_needs_two_consecutive_holds(ws):
    manager = AlertManager(ws)
    rule = rule_of(
        "  - name: r\n    model: risk\n    when: x > 1\n    for: 2\n    actions: [log]\n"
    )

    first = manager.evaluate(rule, "risk", {"x": 5}, now=T0)
    assert first.transition == "pending" and first.actions == []
    pending = manager.get(first.alert_id)
    assert (pending.state, pending.evaluations) == ("pending", 1)
    assert manager.history(first.alert_id) == []

    broken = manager.evaluate(rule, "risk", {"x": 0}, now=T0 + timedelta(hours=1))
    assert (broken.transition, broken.alert_id) == ("ok", None)
    assert manager.alerts(rule="r") == []  # a pending alert that never fired leaves nothing

    assert manager.evaluate(rule, "risk", {"x": 5}, now=T0 + timedelta(hours=2)).transition == (
        "pending"
    )
    fired = manager.evaluate(rule, "risk", {"x": 6}, now=T0 + timedelta(hours=3))
    assert fired.transition == "fired" and [a.action for a in fired.actions] == ["log"]
    alert = manager.get(fired.alert_id)
    assert (alert.state, alert.evaluations, alert.value) == ("firing", 2, 6.0)
    assert alert.fired_at == T0 + timedelta(hours=3)
    assert manager.evaluate(rule, "risk", {"x": 7}).transition == "firing"
    assert [e.kind for e in manager.history(fired.alert_id)] == ["fired", "action"]


# -- webhooks -------------------------------------------------------------------------------


def webhook_rule(url: str, **options: Any) -> Rule:
    settings = ", ".join(f"{k}: {json.dumps(v)}" for k, v in {"url": url, **options}.items())
    return rule_of(
        "  - name: weather-drift\n    model: risk@champion\n    severity: critical\n"
        "    when: drift.share >= 0.3\n"
        f"    actions:\n      - webhook: {{{settings}}}\n"
    )


def test_a_webhook_is_retried_on_5xx_with_backoff_then_delivered(ws, receiver):
    receiver.statuses = [503, 503]
    sleeps = Sleeps()
    manager = AlertManager(ws, sleep=sleeps)
    rule = webhook_rule(receiver.url, retries=3, timeout_s=5)

    outcome = manager.evaluate(rule, "risk", {"drift.share": 0.42}, now=T0)

    assert outcome.transition == "fired"
    assert [(a.action, a.status) for a in outcome.actions] == [("webhook", "ok")]
    assert outcome.actions[0].details["attempts"] == 3
    assert sleeps == [0.5, 1.0]
    assert len(receiver.requests) == 3
    request = receiver.requests[-1]
    assert request["path"] == "/hook/secret-token"
    assert request["headers"]["Content-Type"] == "application/json"
    payload = request["json"]
    assert set(payload) == {
        "alert_id", "rule", "model", "state", "severity", "condition", "value", "message",
        "fired_at", "resolved_at", "details",
    }  # fmt: skip
    assert payload["alert_id"] == outcome.alert_id
    assert (payload["rule"], payload["model"], payload["state"], payload["severity"]) == (
        "weather-drift", "risk", "firing", "critical",
    )  # fmt: skip
    assert payload["condition"] == "drift.share >= 0.3" and payload["value"] == 0.42
    assert payload["message"] == "weather-drift on risk: drift.share = 0.42 (drift.share >= 0.3)"
    assert payload["fired_at"] == T0.isoformat() and payload["resolved_at"] is None
    assert payload["details"]["facts"] == {"drift.share": 0.42}

    events = [e for e in manager.history(outcome.alert_id) if e.kind == "action"]
    assert [(e.action, e.status) for e in events] == [("webhook", "ok")]
    assert "secret-token" not in json.dumps(events[0].details)  # the URL path is not stored


def test_a_4xx_answer_is_not_retried(ws, receiver):
    receiver.statuses = [404, 200]
    sleeps = Sleeps()
    manager = AlertManager(ws, sleep=sleeps)
    outcome = manager.evaluate(webhook_rule(receiver.url, retries=3), "risk", {"drift.share": 1})
    assert outcome.transition == "fired"
    result = outcome.actions[0]
    assert result.status == "failed" and result.details["status_code"] == 404
    assert result.details["error"] == "HTTP 404"
    assert len(receiver.requests) == 1 and sleeps == []
    events = manager.history(outcome.alert_id)
    assert [(e.kind, e.status) for e in events] == [("fired", None), ("action", "failed")]


def test_an_unreachable_webhook_is_recorded_as_failed_without_raising(ws, caplog):
    sleeps = Sleeps()
    manager = AlertManager(ws, sleep=sleeps)
    rule = webhook_rule(free_port_url(), retries=2, timeout_s=2)
    with caplog.at_level(logging.ERROR, logger="plinth.monitoring.alerts"):
        outcome = manager.evaluate(rule, "risk", {"drift.share": 1})
    assert outcome.transition == "fired"
    result = outcome.actions[0]
    assert result.status == "failed" and result.details["attempts"] == 3
    assert result.details["status_code"] is None and "ConnectError" in result.details["error"]
    assert sleeps == [0.5, 1.0]
    assert any("action webhook failed" in r.getMessage() for r in caplog.records)
    event = manager.history(outcome.alert_id)[-1]
    assert (event.action, event.status) == ("webhook", "failed")
    assert manager.get(outcome.alert_id).state == "firing"


def test_on_resolve_webhooks_post_the_resolution(ws, receiver):
    manager = AlertManager(ws, sleep=Sleeps())
    rule = webhook_rule(receiver.url, on_resolve=True)
    fired = manager.evaluate(rule, "risk", {"drift.share": 0.5}, now=T0)
    manager.evaluate(rule, "risk", {"drift.share": 0.6}, now=T0 + timedelta(hours=1))
    assert len(receiver.requests) == 1  # deduplicated: no second POST while firing
    resolved = manager.evaluate(rule, "risk", {"drift.share": 0.1}, now=T0 + timedelta(hours=2))
    assert resolved.transition == "resolved"
    assert [(a.action, a.status) for a in resolved.actions] == [("webhook", "ok")]
    assert len(receiver.requests) == 2
    payload = receiver.requests[1]["json"]
    assert payload["alert_id"] == fired.alert_id and payload["state"] == "resolved"
    assert payload["resolved_at"] == (T0 + timedelta(hours=2)).isoformat()
    assert "resolved" in payload["message"]
    kinds = [(e.kind, e.details.get("event")) for e in manager.history(fired.alert_id)]
    assert kinds == [
        ("fired", None),
        ("action", "fired"),
        ("resolved", None),
        ("action", "resolved"),
    ]


def test_webhooks_without_on_resolve_stay_silent_on_resolution(ws, receiver):
    manager = AlertManager(ws, sleep=Sleeps())
    rule = webhook_rule(receiver.url)
    manager.evaluate(rule, "risk", {"drift.share": 0.5})
    assert manager.evaluate(rule, "risk", {"drift.share": 0.1}).actions == []
    assert len(receiver.requests) == 1


# -- retraining -----------------------------------------------------------------------------


def test_the_retrain_action_runs_the_pipeline_and_records_its_run(ws):
    manager = AlertManager(ws)
    rule = rule_of(
        "  - name: retrain-on-drift\n    model: risk\n    when: drift.share > 0.5\n"
        f"    actions:\n      - retrain: {{pipeline: '{RETRAIN_OK}', params: {{n: 4}}}}\n"
    )
    outcome = manager.evaluate(rule, "risk", {"drift.share": 0.9})
    result = outcome.actions[0]
    assert (result.action, result.status) == ("retrain", "ok")
    run = ws.pipelines.get(result.pipeline_run_id)
    assert run.status == "succeeded" and run.params["n"] == 4
    event = manager.history(outcome.alert_id)[-1]
    assert (event.kind, event.action, event.status) == ("action", "retrain", "ok")
    assert event.pipeline_run_id == result.pipeline_run_id


def test_a_failing_retrain_pipeline_is_recorded_as_failed(ws):
    manager = AlertManager(ws)
    rule = rule_of(
        "  - name: retrain-on-drift\n    model: risk\n    when: drift.share > 0.5\n"
        f"    actions:\n      - retrain: {{pipeline: '{RETRAIN_BROKEN}'}}\n"
        "      - retrain: {pipeline: 'no_such_module_xyz:flow'}\n      - log\n"
    )
    outcome = manager.evaluate(rule, "risk", {"drift.share": 0.9})
    broken, missing, log = outcome.actions
    assert broken.status == "failed" and "exploded on purpose" in broken.details["error"]
    assert ws.pipelines.get(broken.pipeline_run_id).status == "failed"
    assert missing.status == "failed" and missing.pipeline_run_id is None
    assert "no_such_module_xyz" in missing.details["error"]
    assert log.status == "ok"  # later actions still run
    events = [e for e in manager.history(outcome.alert_id) if e.kind == "action"]
    assert [(e.action, e.status) for e in events] == [
        ("retrain", "failed"), ("retrain", "failed"), ("log", "ok"),
    ]  # fmt: skip
    assert events[0].pipeline_run_id == broken.pipeline_run_id


# -- concurrency ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/catalog.db"
    return request.getfixturevalue("postgres_db_url")


def test_racing_evaluators_open_one_alert_and_run_its_actions_once(tmp_path, database_url):
    import plinth

    settings = plinth.Settings(home=tmp_path / "ws", database_url=database_url, user="tester")
    workspaces = [plinth.Workspace(settings=settings) for _ in range(4)]
    rule = Rule(name="race", model="risk", when="x > 1", actions=["log"])
    start = threading.Barrier(len(workspaces))
    outcomes: list[str] = []

    def evaluate(workspace: plinth.Workspace) -> None:
        manager = AlertManager(workspace)
        start.wait()
        for _ in range(5):
            outcomes.append(manager.evaluate(rule, "risk", {"x": 2}).transition)

    threads = [threading.Thread(target=evaluate, args=(w,)) for w in workspaces]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["fired"] + ["firing"] * 19
        (alert,) = AlertManager(workspaces[0]).alerts()
        assert alert.evaluations == 20
        assert [e.kind for e in AlertManager(workspaces[0]).history(alert.id)] == [
            "fired",
            "action",
        ]
    finally:
        for workspace in workspaces:
            workspace.close()
