"""One small real workspace, served by a real uvicorn server with authentication on, and a
client over it per backend: ``local`` (the Python services) and ``remote`` (HTTP)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plinth._core.settings import Settings

USER = "tester"
EXPERIMENTS = ("exp-a", "exp-b")


class CountingApp:
    """ASGI middleware counting requests by (method, path), to see batching from the server."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            with self.lock:
                self.counts[(scope["method"], scope["path"])] += 1
        await self.app(scope, receive, send)

    def count(self, method: str, suffix: str) -> int:
        with self.lock:
            return sum(n for (m, p), n in self.counts.items() if m == method and p.endswith(suffix))


class Server:
    """uvicorn in a background thread of this process, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from plinth.serving.background import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("The test server did not start.")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@dataclass
class World:
    """The workspace, the server over it, and what the tests look up."""

    settings: Settings
    ws: Any
    server: Server | None = None
    app: CountingApp | None = None
    admin_token: str = ""
    viewer_token: str = ""
    run_ids: list[str] = field(default_factory=list)


def _build(ws: Any) -> list[str]:
    """A table with two versions, a feature view and service over it, runs with metrics, a
    model with versions 1 and 2 and alias champion, a pipeline run, a deployment and a firing
    alert."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression

    import plinth
    from plinth.monitoring.alerts import AlertManager
    from plinth.monitoring.rules import Rule
    from plinth.pipelines import run as run_pipeline
    from plinth.serving.deployments import DeploymentSpec
    from tests.pipelines import flows

    ws.lake.ingest(pa.table({"id": [1, 2, 3], "delay": [1.5, 2.5, None]}), table="flights")
    ws.lake.ingest(pa.table({"id": [4], "delay": [0.5]}), table="flights")
    ws.lake.ingest(pa.table({"code": ["JFK"]}), table="airports")
    view = plinth.FeatureView(
        "delays",
        source="flights",
        entities=[plinth.Entity("id")],
        timestamp=None,
        features=["delay"],
    )
    ws.features.apply([view, plinth.FeatureService("delay_svc", ["delays:delay"])])
    run_ids = []
    for i in range(5):
        experiment = EXPERIMENTS[i % 2]
        with ws.run(experiment, params={"lr": 0.1 * (i + 1), "i": i}, capture=False) as run:
            run.set_tags({"team": "ops"})
            for step in range(20):
                run.log_metrics({"loss": 1 / (step + 1 + i), "auc": 0.5 + 0.01 * step}, step=step)
            run.log_metric("nan", float("nan"))
        run_ids.append(run.id)
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    data = pd.DataFrame({"x": x, "delayed": (x + rng.normal(size=200) > 0).astype(int)})
    with ws.run("train", capture=False) as run:
        run.log_model(LogisticRegression().fit(data[["x"]], data["delayed"]), "clf")
    run_ids.append(run.id)
    model = LogisticRegression(C=0.5).fit(data[["x"]], data["delayed"])
    ws.models.register(model, "clf", example=data[["x"]].head(3))
    ws.models.set_alias("clf", "champion", 1, reason="first")
    run_pipeline(flows.simple, {"n": 5}, ws=ws)
    ws.deployments.apply(DeploymentSpec.of("clf@champion"))
    rule = Rule(name="hot", model="clf", when="x > 1")
    AlertManager(ws).evaluate(rule, "clf", {"x": 2.0})
    return run_ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The workspace and a real server over it (authentication on), built once per module."""
    from plinth.governance.tokens import create_token
    from plinth.server.app import create_app
    from plinth.workspace import Workspace

    home = Path(tmp_path_factory.mktemp("client")) / "ws"
    settings = Settings(home=home, user=USER, auth=True)
    ws = Workspace(settings=settings)
    world = World(settings, ws)
    world.run_ids = _build(ws)
    world.admin_token = create_token(ws, "admin", role="admin").secret
    world.viewer_token = create_token(ws, "viewer", role="viewer").secret
    served = Workspace(settings=settings)  # the server's own handle, as in its own process
    world.app = CountingApp(create_app(served))
    world.server = Server(world.app)
    yield world
    world.server.stop()
    served.close()
    ws.close()


@pytest.fixture(params=["local", "remote"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    return str(request.param)


@pytest.fixture
def client(backend: str, world: World) -> Iterator[Any]:
    """A client of ``backend`` over the world's workspace (remote: as an admin)."""
    from plinth.client import LocalClient, RemoteClient
    from plinth.workspace import Workspace

    if backend == "local":
        made: Any = LocalClient(Workspace(settings=world.settings), own=True)
    else:
        assert world.server is not None
        made = RemoteClient(world.server.url, world.admin_token)
    yield made
    made.close()
