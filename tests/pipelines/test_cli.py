"""The pipeline commands: run with progress and exit codes, runs, show, logs."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from plinth.cli.main import app, main


@pytest.fixture
def home(tmp_path) -> str:
    return str(tmp_path / "ws")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_shows_progress_then_runs_and_show_list_it(home):
    runner = CliRunner()
    done = runner.invoke(
        app, ["pipeline", "run", "tests.pipelines.flows:simple", "--param", "n=3", "--home", home]
    )
    assert done.exit_code == 0, done.output
    assert "Running pipeline simple as run pr_" in done.output
    assert "numbers: succeeded" in done.output and "total: succeeded" in done.output
    assert "succeeded in" in done.output and "2 ran, 0 cached" in done.output
    again = runner.invoke(
        app, ["pipeline", "run", "tests.pipelines.flows:simple", "-p", "n=3", "--home", home]
    )
    assert "numbers: cached (cache hit from pr_" in again.output
    assert "0 ran, 2 cached" in again.output

    listed = runner.invoke(app, ["pipeline", "runs", "--home", home, "--json"])
    runs = json.loads(listed.output)
    assert [r["steps"] for r in runs] == [{"cached": 2}, {"succeeded": 2}]
    table = runner.invoke(app, ["pipeline", "runs", "--home", home])
    assert runs[0]["id"] in table.output

    shown = runner.invoke(app, ["pipeline", "show", runs[0]["id"], "--home", home])
    assert shown.exit_code == 0, shown.output
    assert "pipeline simple" in shown.output and "params: n=3" in shown.output
    assert f"cache hits from run {runs[1]['id']}: numbers, total" in shown.output
    detail = json.loads(
        runner.invoke(app, ["pipeline", "show", runs[1]["id"], "--home", home, "--json"]).output
    )
    assert [s["name"] for s in detail["steps"]] == ["numbers", "total"]
    assert detail["steps"][1]["after"] == ["numbers"]

    logs = runner.invoke(app, ["pipeline", "logs", runs[1]["id"], "numbers", "--home", home])
    assert logs.output == "making 3 numbers\n"
    quiet = runner.invoke(app, ["pipeline", "logs", runs[1]["id"], "total", "--home", home])
    assert "printed nothing" in quiet.output


def test_no_cache_and_json(home, capsys):
    assert cli(capsys, "pipeline", "run", "tests.pipelines.flows:simple", "--home", home)[0] == 0
    code, out, _ = cli(
        capsys,
        "pipeline",
        "run",
        "tests.pipelines.flows:simple",
        "--no-cache",
        "--json",
        "--home",
        home,
    )
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "succeeded"
    assert [s["status"] for s in data["steps"]] == ["succeeded", "succeeded"]


def test_a_failed_run_exits_1_with_the_step_error(home, capsys):
    code, out, err = cli(capsys, "pipeline", "run", "tests.pipelines.flows:failing", "--home", home)
    assert code == 1
    assert "explode: failed" in out and "later: skipped" in out
    assert "Error: Pipeline 'failing' failed: step 'explode' failed after 2 attempts" in err
    assert "ValueError: exploded on purpose" in err and "Traceback" not in err
    run_id = err.split("plinth pipeline logs ")[1].split()[0]
    code, out, _ = cli(capsys, "pipeline", "logs", run_id, "explode", "--home", home)
    assert code == 0 and "Traceback" in out and "--- attempt 2 ---" in out
    code, out, _ = cli(capsys, "pipeline", "show", run_id, "--home", home)
    assert code == 0 and "exploded on purpose" in out and "skipped" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests.pipelines.flows:simple", "--param", "nope=1"], "has no parameter 'nope'"),
        (["tests.pipelines.flows:simple", "--param", "n"], "'n' is not a parameter"),
        (["tests.pipelines.flows:simple", "-p", "n=x"], "expects int, got 'x'"),
        (["tests.pipelines.flows:missing"], "has no pipeline 'missing'"),
        (["no_such_module_here:flow"], "Cannot import module"),
        (["tests.pipelines.flows:simple", "--executor", "dask"], "Unknown executor 'dask'"),
        (["tests.pipelines.flows:simple", "--ray-address", "x:1"], "--ray-address needs"),
    ],
)
def test_bad_input_exits_1_without_a_traceback(home, capsys, args, message):
    code, _, err = cli(capsys, "pipeline", "run", *args, "--home", home)
    assert code == 1
    assert message in err and "Traceback" not in err


def test_show_and_logs_of_unknown_runs_exit_1(home, capsys):
    code, _, err = cli(capsys, "pipeline", "show", "pr_nope", "--home", home)
    assert code == 1 and "No pipeline run has the id 'pr_nope'" in err
    assert cli(capsys, "pipeline", "runs", "--home", home)[1].strip() == "No pipeline runs yet."


def test_run_a_pipeline_from_a_file(home, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "myflows", raising=False)
    script = tmp_path / "myflows.py"
    script.write_text(
        "from plinth.pipelines import pipeline, step\n\n"
        "@step\ndef hello(name: str) -> str:\n    return f'hello {name}'\n\n"
        "@pipeline\ndef greet(name: str = 'world'):\n    return hello(name)\n"
    )
    code, out, err = cli(
        capsys, "pipeline", "run", f"{script}:greet", "-p", "name=ada", "--home", home
    )
    assert code == 0, err
    assert "hello: succeeded" in out
