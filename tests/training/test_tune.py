"""``plinth tune``: a parent run, one child run per trial, the best trial tagged."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from plinth.catalog.models import RunMetric, RunTag
from tests.training.conftest import runs

pytest.importorskip("optuna")

OBJECTIVE = """
    import sys
    import plinth
    from plinth.training import params

    p = params({"x": 0.0, "depth": 1, "opt": "a", "fixed": 0})
    if p["opt"] == "bad":
        print("refusing opt=bad", file=sys.stderr)
        sys.exit(2)
    with plinth.Workspace().run("quad", params=p) as run:
        run.log_metric("score", (p["x"] - 0.3) ** 2 + 0.01 * p["depth"] + p["fixed"])
"""

SPACE = """
x: {type: float, low: -1.0, high: 1.0}
depth: {type: int, low: 1, high: 4}
opt: {type: categorical, choices: [a]}
"""


def tags(ws, run_id: str) -> dict[str, str]:
    with ws.catalog.session() as session:
        rows = session.scalars(select(RunTag).where(RunTag.run_id == run_id))
        return {t.key: t.value for t in rows}


def scores(ws) -> dict[str, float]:
    with ws.catalog.session() as session:
        rows = session.scalars(select(RunMetric).where(RunMetric.key == "score"))
        return {m.run_id: m.last for m in rows}


def check_search(ws, trials: int) -> None:
    parent, *children = runs(ws)
    assert (parent.launcher, parent.status, parent.parent_id) == ("tune", "finished", None)
    assert len(children) == trials
    assert {c.parent_id for c in children} == {parent.id}
    assert {c.status for c in children} == {"finished"}
    values = scores(ws)
    best_id = min(values, key=values.get)
    assert [c.id for c in children if tags(ws, c.id).get("best") == "true"] == [best_id]
    parent_tags = tags(ws, parent.id)
    assert parent_tags["best_run"] == best_id
    assert float(parent_tags["best_value"]) == values[best_id]
    best_params = json.loads(parent_tags["best_params"])
    assert set(best_params) == {"x", "depth", "opt"}
    assert parent_tags["best.depth"] == str(best_params["depth"])
    assert sorted(int(tags(ws, c.id)["trial"]) for c in children) == list(range(trials))


def test_tune_runs_trials_as_child_runs_and_tags_the_best(ws, script, plinth_cli, tmp_path):
    path = script("quad.py", OBJECTIVE)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    done = plinth_cli(
        "tune", str(path), "--space", str(space), "--trials", "3", "--metric", "score",
        "--seed", "1", "--param", "fixed=1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "best: trial" in done.stdout
    check_search(ws, 3)
    parent = runs(ws)[0]
    assert parent.requested["trials"] == 3
    assert all(v >= 1 for v in scores(ws).values())  # the fixed parameter reached every trial


def test_failed_trials_are_told_as_failed(ws, script, plinth_cli, tmp_path):
    path = script("quad.py", OBJECTIVE)
    space = tmp_path / "space.yaml"
    space.write_text(
        "x: {type: float, low: 0, high: 1}\nopt: {type: categorical, choices: [bad]}\n"
    )
    done = plinth_cli(
        "tune", str(path), "--space", str(space), "--trials", "2", "--metric", "score", "--json"
    )
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "failed" and result["best"] is None
    assert [t["status"] for t in result["trials"]] == ["failed", "failed"]
    parent, *children = runs(ws)
    assert parent.status == "failed" and "no trial succeeded" in parent.error
    assert [c.error for c in children] == ["exit code 2", "exit code 2"]


def test_bad_space_is_a_clean_error_naming_the_key(ws, script, plinth_cli, tmp_path):
    path = script("quad.py", OBJECTIVE)
    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: float, low: 0.1, high: 0.01}\n")
    done = plinth_cli("tune", str(path), "--space", str(space), "--trials", "3")
    assert done.returncode == 1
    assert "parameter 'lr' has low 0.1 not below high 0.01" in done.stderr
    assert "Traceback" not in done.stderr
    assert runs(ws) == []  # nothing was started
