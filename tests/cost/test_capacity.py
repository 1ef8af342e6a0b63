"""Capacity planning from load-test results, and the ``plinth capacity`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from plinth.cli import capacity_cmd
from plinth.cost import CapacityPlan, LoadStep, LoadTestResult, capacity
from plinth.errors import ConfigError


def _step(rate: float, achieved: float, p99: float, errors: int = 0) -> dict[str, Any]:
    return {
        "rate": rate,
        "achieved": achieved,
        "duration_s": 10.0,
        "requests": int(achieved * 10),
        "errors": errors,
        "p50_ms": p99 / 3,
        "p95_ms": p99 / 1.5,
        "p99_ms": p99,
        "max_ms": p99 * 2,
    }


def _result(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": "http://127.0.0.1:8080/v1/models/delay/predict",
        "model": "delay",
        "workers": 1,
        "cpus": 2,
        "started_at": "2026-11-27T07:00:00+00:00",
        "steps": list(steps),
    }


STEPS = (
    _step(100, 99.8, 2.5),
    _step(200, 199.6, 4.0),
    _step(400, 398.0, 12.0),
    _step(800, 620.0, 95.0),  # saturated
)


@pytest.fixture
def result_file(tmp_path: Path) -> Path:
    path = tmp_path / "loadtest.json"
    path.write_text(json.dumps(_result(*STEPS)))
    return path


def test_known_steps_give_the_expected_replicas():
    plan = capacity(_result(*STEPS), target_qps=1000, slo_p99_ms=20)
    assert isinstance(plan, CapacityPlan)
    assert plan.sustainable_qps == 398.0
    assert plan.step.rate == 400
    # ceil(1000 / (398 * 0.7)) = ceil(3.59) = 4
    assert plan.replicas == 4
    assert plan.per_replica_qps == 250
    assert plan.utilisation == pytest.approx(250 / 398)
    assert plan.extrapolated  # 1000/s is beyond the 620/s achieved at most
    assert (plan.workers, plan.cpus, plan.model) == (1, 2, "delay")

    tight = capacity(_result(*STEPS), target_qps=1000, slo_p99_ms=5)
    assert tight.sustainable_qps == 199.6
    assert tight.replicas == 8  # ceil(1000 / 139.72) = ceil(7.16)

    small = capacity(_result(*STEPS), target_qps=50, slo_p99_ms=20, min_replicas=2)
    assert small.replicas == 2 and not small.extrapolated
    exact = capacity(_result(_step(100, 100, 1), _step(200, 100, 50)), target_qps=70, slo_p99_ms=5)
    assert exact.replicas == 1  # 70 / (100 * 0.7) is exactly 1
    assert capacity(_result(*STEPS), target_qps=1000, slo_p99_ms=20, headroom=1).replicas == 3


def test_saturated_and_failing_steps_are_ignored():
    steps = (
        _step(100, 99.0, 3.0),
        _step(300, 250.0, 4.0),  # fast, but the server fell behind: saturated
        _step(400, 400.0, 4.0, errors=2),  # errors
    )
    plan = capacity(_result(*steps), target_qps=500, slo_p99_ms=10)
    assert plan.sustainable_qps == 99.0
    assert plan.replicas == 8  # ceil(500 / 69.3)
    step = LoadStep.from_dict(steps[1])
    assert step.saturated and "saturated" in (step.problem(10) or "")


def test_notes_on_noisy_and_unbounded_tests():
    noisy = capacity(
        _result(_step(100, 100, 30), _step(200, 200, 8), _step(400, 300, 90)),
        target_qps=100,
        slo_p99_ms=10,
    )
    assert any("noisy" in n for n in noisy.notes)
    unbounded = capacity(
        _result(_step(100, 100, 1), _step(200, 200, 2)), target_qps=100, slo_p99_ms=10
    )
    assert any("test higher rates" in n for n in unbounded.notes)


def test_slo_that_no_step_meets_raises():
    with pytest.raises(ConfigError, match="cannot be met at any tested rate") as info:
        capacity(_result(*STEPS), target_qps=100, slo_p99_ms=1)
    assert "looser SLO" in str(info.value) or "loosen the SLO" in str(info.value)
    assert "workers" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"target_qps": 0, "slo_p99_ms": 10}, "target_qps"),
        ({"target_qps": 10, "slo_p99_ms": -1}, "slo_p99_ms"),
        ({"target_qps": 10, "slo_p99_ms": 10, "headroom": 1.5}, "headroom"),
        ({"target_qps": 10, "slo_p99_ms": 10, "min_replicas": 0}, "min_replicas"),
    ],
)
def test_bad_arguments_raise(arguments, match):
    with pytest.raises(ConfigError, match=match):
        capacity(_result(*STEPS), **arguments)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({**_result(*STEPS), "steps": []}, "no steps"),
        ({**_result(*STEPS), "steps": None}, "'steps'"),
        (_result({**_step(1, 1, 1), "p99_ms": "fast"}), "'p99_ms' in step 1"),
        (_result({k: v for k, v in _step(1, 1, 1).items() if k != "achieved"}), "'achieved'"),
        ({k: v for k, v in _result(*STEPS).items() if k != "cpus"}, "'cpus'"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_malformed_results_raise(data, match):
    with pytest.raises(ConfigError, match=match):
        capacity(data, target_qps=10, slo_p99_ms=10)


def test_result_round_trip_and_load(result_file: Path):
    loaded = LoadTestResult.load(result_file)
    assert loaded.to_dict() == _result(*STEPS)
    assert LoadTestResult.from_dict(loaded.to_dict()) == loaded
    with_statuses = {**_step(1, 1, 1), "statuses": {"200": 10}}
    assert LoadStep.from_dict(with_statuses).to_dict() == with_statuses
    assert capacity(result_file, target_qps=10, slo_p99_ms=20).replicas == 1
    assert capacity(str(result_file), target_qps=10, slo_p99_ms=20).to_dict()["replicas"] == 1


def test_plan_to_dict_is_json():
    data = capacity(_result(*STEPS), target_qps=1000, slo_p99_ms=20).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["replicas"] == 4 and data["step"]["rate"] == 400
    assert "linearly" in data["assumption"]


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # keeps 'capacity' a subcommand
        pass

    capacity_cmd.register(app)
    return app


def test_cli_prints_the_steps_and_the_plan(app, result_file):
    out = CliRunner().invoke(
        app,
        ["capacity", str(result_file), "--qps", "1000", "--p99-ms", "20"],
        env={"COLUMNS": "120"},
    )
    assert out.exit_code == 0, out.output
    assert "met, used" in out.output
    assert "saturated" in out.output
    assert "Replicas: 4" in out.output
    assert "Extrapolated" in out.output


def test_cli_json(app, result_file):
    args = ["capacity", str(result_file), "--qps", "100", "--p99-ms", "5", "--min-replicas", "2"]
    out = CliRunner().invoke(app, [*args, "--json", "--headroom", "0.5"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["replicas"] == 2 and data["headroom"] == 0.5
    assert data["result"] == str(result_file)


@pytest.mark.parametrize("content", [None, "{not json", json.dumps(_result())])
def test_cli_bad_file_exits_non_zero_without_traceback(app, tmp_path, monkeypatch, capsys, content):
    import plinth.cli.main as cli_main

    path = tmp_path / "loadtest.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(cli_main, "app", app)
    code = cli_main.main(["capacity", str(path), "--qps", "10", "--p99-ms", "5"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Error:" in err and "load-test result" in err
    assert "Traceback" not in out + err


def test_cli_slo_unmet_exits_non_zero(app, result_file, monkeypatch, capsys):
    import plinth.cli.main as cli_main

    monkeypatch.setattr(cli_main, "app", app)
    code = cli_main.main(["capacity", str(result_file), "--qps", "10", "--p99-ms", "0.5"])
    _, err = capsys.readouterr()
    assert code == 1 and "cannot be met" in err
