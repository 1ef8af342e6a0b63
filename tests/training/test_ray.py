"""The Ray launcher and Ray tuning on a local Ray head (started by the test session).

Locally these skip when Ray cannot be started; under ``CI=true`` that is a failure.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from plinth.catalog.models import RunArtifact, RunResource
from tests.training.conftest import MLP, runs
from tests.training.test_ddp import VAL_LOSS_TOLERANCE
from tests.training.test_tune import OBJECTIVE, SPACE, check_search

pytest.importorskip("torch")


@pytest.mark.ray
@pytest.mark.slow
def test_mlp_runs_unchanged_on_ray_train_workers(ws, plinth_cli, ray_address):
    local = plinth_cli("train", str(MLP), "--param", "epochs=3")
    assert local.returncode == 0, local.stderr
    done = plinth_cli("train", str(MLP), "--ray", ray_address, "--workers", "2", "-p", "epochs=3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    one, ray_run = runs(ws)
    assert (ray_run.launcher, ray_run.status) == ("ray", "finished")
    assert ray_run.requested["workers"] == 2
    first = ws.runs.history(one.id, "val_loss").values
    second = ws.runs.history(ray_run.id, "val_loss").values
    assert len(second) == 3
    assert all(abs(a - b) <= VAL_LOSS_TOLERANCE for a, b in zip(first, second, strict=True))
    with ws.catalog.session() as session:
        ranks = session.scalars(
            select(RunResource.rank).where(RunResource.run_id == ray_run.id)
        ).all()
        names = set(
            session.scalars(select(RunArtifact.name).where(RunArtifact.run_id == ray_run.id))
        )
    assert sorted(ranks) == [0, 1]
    assert "model.pt" in names  # saved once (rank 0), not again from Ray's copy
    assert not any(name.startswith("checkpoints/") for name in names)


@pytest.mark.ray
@pytest.mark.slow
def test_tune_runs_trials_as_ray_tasks(ws, script, plinth_cli, tmp_path, ray_address):
    pytest.importorskip("optuna")
    path = script("quad.py", OBJECTIVE)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    done = plinth_cli(
        "tune", str(path), "--space", str(space), "--trials", "3", "--metric", "score",
        "--ray", ray_address, "--parallel", "2", "--seed", "3",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_search(ws, 3)
    assert runs(ws)[0].requested["address"] == ray_address


def test_checkpoints_reported_to_ray_become_run_artifacts(ws, tmp_path):
    pytest.importorskip("ray.train")
    import ray.train

    from plinth.tracking import start_run
    from plinth.training.checkpoint import LOGGED_MARKER
    from plinth.training.ray_launcher import store_checkpoints

    raw = tmp_path / "checkpoint_000001"
    raw.mkdir()
    (raw / "weights.bin").write_bytes(b"\x00\x01")
    logged = tmp_path / "checkpoint_000002"
    logged.mkdir()
    (logged / LOGGED_MARKER).write_text("")

    result = SimpleNamespace(
        best_checkpoints=[
            (ray.train.Checkpoint.from_directory(str(raw)), {}),
            (ray.train.Checkpoint.from_directory(str(logged)), {}),
        ],
        checkpoint=None,
    )
    run = start_run(ws, "ckpt", capture=False)
    assert store_checkpoints(run, result) == ["checkpoints/checkpoint_000001"]
    run.end()
    with ws.catalog.session() as session:
        names = set(session.scalars(select(RunArtifact.name).where(RunArtifact.run_id == run.id)))
    assert names == {"checkpoints/checkpoint_000001/weights.bin"}
