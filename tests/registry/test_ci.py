"""'plinth ci': a gated pipeline passes, refuses a worse model, and re-uses decisions exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

import plinth
from plinth.cli.main import main

FLOW = "tests.registry.gated_flow:flow"


@pytest.fixture
def home(tmp_path: Path) -> str:
    return str(tmp_path / "ws")


def _ci(capsys: pytest.CaptureFixture[str], home: str, *args: str) -> tuple[int, str]:
    code = main(["ci", FLOW, "--home", home, *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_ci_promotes_refuses_and_reuses_decisions(capsys, home) -> None:
    code, out = _ci(capsys, home)
    assert code == 0, out
    assert "Gate passed: gated version 1 against no champion yet." in out
    # Unchanged: every step cached, including the gate that promoted its own candidate.
    code, out = _ci(capsys, home)
    assert code == 0 and "0 ran, 3 cached" in out and "Gate passed: gated version 1" in out
    # A model that sees only noise is refused and the champion stays.
    code, out = _ci(capsys, home, "--param", "column=noise")
    assert code == 1
    assert "Gate failed: gated version 2 against champion version 1." in out
    assert "failed: auc >= champion.auc - 0.002" in out
    assert "did not move" in out and "Traceback" not in out
    ws = plinth.Workspace(home)
    assert ws.models.resolve("gated@champion") == ("gated", 1)
    # Moving the champion by hand changes the gate's cache key: the gate is judged again.
    ws.models.set_alias("gated", "champion", 2, reason="manual")
    ws.close()
    code, out = _ci(capsys, home)
    assert code == 0 and "1 ran, 2 cached" in out
    assert "Gate passed: gated version 1 against champion version 2." in out


def test_a_policy_with_an_unknown_metric_stops_the_run_before_any_step(capsys, home) -> None:
    code, out = _ci(capsys, home, "--param", "rule=f1 > 0.5")
    assert code == 1 and "unknown metric(s): f1" in out
    ws = plinth.Workspace(home)
    assert ws.pipelines.runs() == [] and ws.models.list() == []
    ws.close()


def test_ci_needs_a_pipeline(capsys, home) -> None:
    assert main(["ci", "--home", home]) == 1
    assert "No pipeline to run" in capsys.readouterr().err


def test_init_writes_a_github_workflow_once(capsys, home, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLINTH_PIPELINE", FLOW)
    assert main(["init", "--home", home, "--ci", "github"]) == 0
    workflow = (tmp_path / ".github" / "workflows" / "plinth.yml").read_text()
    assert f"plinth ci {FLOW}" in workflow and "python -m pytest" in workflow
    assert main(["init", "--home", home, "--ci", "github"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["init", "--home", home, "--ci", "github", "--force"]) == 0
    assert main(["init", "--home", home, "--ci", "gitlab"]) == 1
