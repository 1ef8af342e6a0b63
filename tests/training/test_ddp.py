"""The example MLP under torchrun: one run, a resource row per rank, and the same validation
loss as one process (within ``VAL_LOSS_TOLERANCE``, the figure stated in docs/training.md).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from plinth.catalog.models import RunArtifact, RunResource
from tests.training.conftest import MLP, runs

pytest.importorskip("torch")

#: Largest difference allowed between the DDP and the single-process validation loss.
VAL_LOSS_TOLERANCE = 1e-5
EPOCHS = "3"


def _series(ws, run_id: str, key: str) -> list[float]:
    history = ws.runs.history(run_id, key)
    assert history.steps == list(range(int(EPOCHS)))
    return history.values


@pytest.mark.slow
def test_ddp_matches_one_process_and_is_one_run(ws, plinth_cli):
    single = plinth_cli("train", str(MLP), "--param", f"epochs={EPOCHS}")
    assert single.returncode == 0, single.stderr
    ddp = plinth_cli("train", str(MLP), "--nproc", "2", "--param", f"epochs={EPOCHS}")
    assert ddp.returncode == 0, ddp.stderr
    assert ddp.stdout.count("epoch 3/3") == 1  # printed by rank 0 only

    one, two = runs(ws)
    assert (one.launcher, two.launcher) == ("local", "torchrun")
    assert two.status == "finished" and two.requested["nproc"] == 2
    for key in ("val_loss", "train_loss"):
        for a, b in zip(_series(ws, one.id, key), _series(ws, two.id, key), strict=True):
            assert abs(a - b) <= VAL_LOSS_TOLERANCE, (key, a, b)
    assert _series(ws, two.id, "val_loss")[-1] < _series(ws, two.id, "val_loss")[0]

    with ws.catalog.session() as session:
        ranks = session.scalars(
            select(RunResource.rank).where(RunResource.run_id == two.id).order_by(RunResource.rank)
        ).all()
        assert ranks == [0, 1]
        names = set(session.scalars(select(RunArtifact.name).where(RunArtifact.run_id == two.id)))
    assert "model.pt" in names
