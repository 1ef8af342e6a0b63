"""Fixtures for serving tests: a workspace with a model that reads online features, and an
in-process server driven over HTTP (httpx's ASGI transport, no socket)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plinth
from tests.registry.conftest import INPUTS, build_training, frame_of


def fit_ridge(training: Any, alpha: float) -> Any:
    """Mean imputation and a ridge regression on the training set's inputs (x, scores__score);
    the imputer lets it answer for entities whose online score is missing."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    inputs, labels = frame_of(training)
    return make_pipeline(SimpleImputer(), Ridge(alpha=alpha)).fit(inputs, labels)


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with model 'risk' (v1 champion, v2) reading the 'svc' features online."""
    home = tmp_path_factory.mktemp("serving") / "ws"
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as ws:
        training = build_training(ws)
        inputs, _ = frame_of(training)
        for alpha in (1.0, 100.0):
            ws.models.register(
                fit_ridge(training, alpha),
                "risk",
                training_set=training,
                features="svc",
                example=inputs.head(5),
            )
        ws.models.set_alias("risk", "champion", 1)
        ws.features.materialize("scores")
    return home


@pytest.fixture
def ws(served_home: Path, tmp_path: Path) -> Iterator[plinth.Workspace]:
    """A private copy of the served workspace (tests move aliases and write logs)."""
    import shutil

    home = tmp_path / "ws"
    shutil.copytree(served_home, home)
    workspace = plinth.Workspace(settings=plinth.Settings(home=home, user="tester"))
    yield workspace
    workspace.close()


def expected(ws: plinth.Workspace, version: int, keys: list[int], xs: list[float]) -> np.ndarray:
    """What version ``version`` of 'risk' predicts for keys and x, with online features."""
    import pandas as pd

    online = ws.features.online([{"k": k} for k in keys], "svc")
    frame = pd.DataFrame({"x": xs, "scores__score": [v["scores__score"] for v in online.values]})
    return np.asarray(ws.models.load(f"risk:{version}").predict(frame[INPUTS]), dtype=float)


class Harness:
    """Run a coroutine against an in-process server: ``harness.run(lambda client: ...)``."""

    def __init__(self, ws: plinth.Workspace, uris: list[str], **options: Any) -> None:
        from plinth.serving.options import ServeOptions
        from plinth.serving.state import ServingState, targets_of

        loader = options.pop("loader", None)
        options.setdefault("log_flush_s", 0.2)
        options.setdefault("log_predictions", False)  # a writer process per test is slow
        self.options = ServeOptions(**options)
        self.state = ServingState(ws, targets_of(uris), self.options, loader=loader)

    def run(self, body: Callable[[Any], Any], *, wait_ready: bool = True) -> Any:
        import httpx

        from plinth.serving.app import create_app

        app = create_app(self.state)

        async def main() -> Any:
            await self.state.start()
            try:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    if wait_ready:
                        for _ in range(600):
                            if self.state.ready or self.state.load_error:
                                break
                            await asyncio.sleep(0.01)
                        assert self.state.ready, self.state.load_error
                    return await body(client)
            finally:
                await self.state.stop()

        return asyncio.run(main())


@pytest.fixture
def harness(ws: plinth.Workspace) -> Callable[..., Harness]:
    """Build an in-process server over the test workspace."""

    def make(uris: list[str] | None = None, **options: Any) -> Harness:
        return Harness(ws, uris or ["risk@champion"], **options)

    return make
