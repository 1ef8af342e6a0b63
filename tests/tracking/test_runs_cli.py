"""``plinth runs list|show|compare|plot``: tables, JSON, charts, and clean errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plinth._core.settings import Settings
from plinth.catalog.lineage import Node, add_edge
from plinth.cli.main import app, main
from plinth.cli.output import console
from plinth.workspace import Workspace
from tests.tracking.rows import add_run, add_series


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print tables 200 columns wide, as on a wide terminal, so no cell is cut."""
    monkeypatch.setattr(console, "_width", 200)


@pytest.fixture
def home(tmp_path: Path) -> str:
    """A workspace holding three runs of two experiments, two of them with metric series."""
    folder = tmp_path / "ws"
    with Workspace(settings=Settings(home=folder, user="tester")) as ws, ws.catalog.session() as s:
        add_run(
            s,
            "run_a",
            experiment="flights",
            params={"lr": 0.1, "opt": "adam"},
            tags={"team": "vision"},
        )
        add_series(s, "run_a", "auc", list(range(50)), [0.5 + i / 200 for i in range(50)])
        add_series(s, "run_a", "loss", list(range(50)), [1 / (1 + i) for i in range(50)])
        add_run(
            s,
            "run_b",
            experiment="flights",
            minutes=1,
            params={"lr": 0.01, "opt": "adam"},
            parent_id="run_a",
            error=None,
        )
        add_series(s, "run_b", "auc", list(range(50)), [0.5 + i / 400 for i in range(50)])
        add_run(
            s,
            "run_c",
            experiment="weather",
            status="failed",
            minutes=2,
            metrics={"auc": math.nan},
            error="CUDA out of memory.",
        )
        add_edge(s, Node("table_version", "flights@0"), Node("run", "run_a"), "input_of")
    return str(folder)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_list_table_and_json(home):
    result = invoke("runs", "list", "--home", home)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    order = [next(i for i, line in enumerate(lines) if r in line) for r in ("run_c", "run_b")]
    assert order[0] < order[1]  # newest first
    assert "metrics.auc" in result.output and "params.lr" in result.output
    assert "0.745" in result.output and "NaN" in result.output
    result = invoke("runs", "list", "--home", home, "--json", "--sort", "metrics.auc desc")
    data = json.loads(result.output)
    assert [r["id"] for r in data] == ["run_a", "run_b", "run_c"]
    assert data[0]["params"] == {"lr": "0.1", "opt": "adam"}
    assert data[2]["metrics"] == {"auc": None}  # NaN as JSON null
    assert data[0]["started_at"].startswith("2026-03-01T12:00:00")


def test_list_filter_limit_and_paging_hint(home):
    result = invoke(
        "runs", "list", "--home", home, "--filter", "metrics.auc > 0.6 and params.opt = 'adam'"
    )
    assert result.exit_code == 0, result.output
    assert "run_a" in result.output and "run_b" in result.output and "run_c" not in result.output
    result = invoke("runs", "list", "--home", home, "--limit", "1", "--sort", "id")
    assert "run_a" in result.output and "run_b" not in result.output
    assert "--offset 1" in result.output
    result = invoke("runs", "list", "--home", home, "-f", "status = 'killed'")
    assert "No runs match." in result.output


def test_show_table_and_json(home):
    result = invoke("runs", "show", "run_a", "--home", home)
    assert result.exit_code == 0, result.output
    for text in ("run_a", "flights", "params", "adam", "metrics", "0.745", "tags", "vision"):
        assert text in result.output
    assert "table_version:flights@0" in result.output and "children (1): run_b" in result.output
    result = invoke("runs", "show", "run_c", "--home", home)
    assert "CUDA out of memory." in result.output
    data = json.loads(invoke("runs", "show", "run_a", "--home", home, "--json").output)
    assert data["metric_summaries"]["auc"]["count"] == 50
    assert data["inputs"][0]["source"] == "table_version:flights@0"
    assert data["children"] == ["run_b"]


def test_compare_table_and_json(home):
    result = invoke("runs", "compare", "run_a", "run_b", "--home", home)
    assert result.exit_code == 0, result.output
    assert "params.lr" in result.output and "metrics.auc" in result.output
    assert "0.01" in result.output and "0.6225" in result.output
    data = json.loads(invoke("runs", "compare", "run_a", "run_b", "--home", home, "--json").output)
    assert data["runs"] == ["run_a", "run_b"]
    assert data["params"]["lr"] == ["0.1", "0.01"]
    assert "param:lr" in data["differs"] and "param:opt" not in data["differs"]
    assert data["metrics"]["loss"] == [pytest.approx(1 / 50), None]


def test_plot_html_and_chosen_metric(home, tmp_path):
    out = tmp_path / "chart.html"
    result = invoke(
        "runs", "plot", "run_a", "run_b", "--metric", "auc", "--output", str(out), "--home", home
    )
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.output and "KiB" in result.output
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 1 and "<script" not in page
    out2 = tmp_path / "all.html"
    result = invoke("runs", "plot", "run_a", "-o", str(out2), "--max-points", "10", "--home", home)
    assert result.exit_code == 0, result.output
    assert out2.read_text(encoding="utf-8").count("<svg") == 2


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "list", "--filter", "metrics.auc >> 1"], "at position 14"),
        (["runs", "list", "--filter", "metrics.auc > 0.5 or status = 'x'"], "expected 'and'"),
        (["runs", "list", "--sort", "metrics.auc sideways"], "The sort 'metrics.auc sideways'"),
        (["runs", "list", "--limit", "-1"], "The limit must be zero or more"),
        (["runs", "show", "ghost"], "No run has the id 'ghost'"),
        (["runs", "show", "run_"], "is ambiguous"),
        (["runs", "compare", "run_a", "ghost"], "No run has the id 'ghost'"),
        (["runs", "plot", "run_a", "--metric", "nope"], "None of the runs has the metric 'nope'"),
        (["runs", "plot", "run_a", "--output", "chart.svg"], "Cannot tell the chart format"),
        (["runs", "plot", "run_a", "--max-points", "1"], "max_points must be at least 2"),
    ],
)
def test_bad_input_exits_1_without_traceback(capsys, home, args, message):
    code, out, err = run_main(capsys, *args, "--home", home)
    assert code == 1, out + err
    assert message in err
    assert "Traceback" not in out + err


def test_bad_filter_error_shows_an_example(capsys, home):
    code, _, err = run_main(capsys, "runs", "list", "--filter", "auc > 1", "--home", home)
    assert code == 1
    assert "'auc' is not a field" in err and "metrics.auc > 0.7 and params.lr = 0.1" in err


def test_empty_workspace_lists_nothing(tmp_path):
    result = invoke("runs", "list", "--home", str(tmp_path / "empty"))
    assert result.exit_code == 0, result.output
    assert "No runs yet." in result.output
