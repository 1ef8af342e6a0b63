"""Fixtures for registry tests: a workspace holding a small point-in-time training set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import plinth

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
ROWS = 120
#: The model inputs of the training set built by :func:`build_training`.
INPUTS = ["x", "scores__score"]


def observations(rows: int = ROWS, seed: int = 0) -> pa.Table:
    """The spine: an entity key, an hourly event time, one numeric input and a label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pa.table(
        {
            "k": pa.array(np.arange(rows) % 5, pa.int64()),
            "ts": pa.array([T0 + timedelta(hours=i) for i in range(rows)], TS),
            "x": x,
            "label": (x + rng.normal(scale=0.5, size=rows) > 0).astype("int64"),
        }
    )


def build_training(ws: plinth.Workspace, *, spine_versions: int = 1) -> object:
    """Ingest ``obs`` (``spine_versions`` times) and ``scores``, apply the view and the
    ``svc`` service, and return the recorded training set built from the newest ``obs``."""
    for version in range(spine_versions):
        ws.lake.ingest(observations(seed=version), table="obs", mode="overwrite")
    ws.lake.ingest(
        pa.table(
            {
                "k": pa.array(range(5), pa.int64()),
                "ts": pa.array([T0] * 5, TS),
                "score": [0.1, 0.2, None, 0.4, 0.5],
            }
        ),
        table="scores",
    )
    ws.features.apply(
        [
            plinth.FeatureView(
                "scores",
                source="scores",
                entities=[plinth.Entity("k")],
                timestamp="ts",
                features=["score"],
            ),
            plinth.FeatureService("svc", features=["scores"]),
        ]
    )
    return ws.features.historical("obs", "svc", timestamp="ts")


def frame_of(training: object) -> tuple[object, object]:
    """Model inputs (missing scores filled) and labels of a training set."""
    frame = training.table.to_pandas()  # type: ignore[attr-defined]
    return frame[INPUTS].fillna(0.0), frame["label"]


def fit_logistic(training: object) -> object:
    """A scikit-learn logistic regression fitted on the training set's inputs."""
    from sklearn.linear_model import LogisticRegression

    inputs, labels = frame_of(training)
    return LogisticRegression().fit(inputs, labels)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[plinth.Workspace]:
    """An embedded workspace."""
    workspace = plinth.Workspace(settings=plinth.Settings(home=tmp_path / "ws", user="tester"))
    yield workspace
    workspace.close()
