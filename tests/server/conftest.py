"""Fixtures for the control-plane API: a small real workspace (a table with a contract, a
feature view, runs with metrics, model 'risk' with an alias, a deployment, a prediction log
and an alert) and the in-process app driven over httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import plinth
from tests.serving.conftest import served_home

__all__ = ["served_home"]

T0 = datetime(2024, 3, 1, tzinfo=UTC)
CONTRACT = "table: sensors\ncolumns:\n  k: {not_null: true}\n  v: {min: 0, max: 100}\n"
RUNS = 3


def _prediction_log(ws: plinth.Workspace, rows: int = 200) -> None:
    rng = np.random.default_rng(3)
    times = pa.array([T0 + timedelta(minutes=i) for i in range(rows)], pa.timestamp("us", tz="UTC"))
    ws.lake.ingest(
        pa.table(
            {
                "request_id": [f"r{i}" for i in range(rows)],
                "row": pa.array([0] * rows, pa.int32()),
                "answered_at": times,
                "event_time": times,
                "model_version": pa.array([1] * rows, pa.int32()),
                "route": ["primary"] * rows,
                "latency_ms": rng.uniform(1, 20, size=rows),
                "x": rng.normal(size=rows),
                "scores__score": rng.choice([0.1, 0.2, 0.4, 0.5], size=rows),
                "prediction": rng.normal(size=rows),
            }
        ),
        table="predictions__risk",
    )


def _alert(ws: plinth.Workspace) -> None:
    from plinth.monitoring.alerts import AlertManager
    from plinth.monitoring.rules import parse_rules

    rule = next(
        iter(
            parse_rules(
                "rules:\n  - name: drifty\n    model: risk@champion\n"
                "    when: drift.share >= 0.3\n    actions: [log]\n",
                "test.yaml",
            )
        )
    )
    AlertManager(ws).evaluate(rule, "risk", {"drift.share": 0.5}, now=T0)


@pytest.fixture(scope="module")
def server_home(served_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served workspace plus everything each API area shows."""
    from plinth.serving.deployments import DeploymentSpec

    home = tmp_path_factory.mktemp("server") / "ws"
    shutil.copytree(served_home, home)
    with plinth.Workspace(settings=plinth.Settings(home=home, user="tester")) as ws:
        ws.quality.apply(CONTRACT)
        ws.lake.ingest(pa.table({"k": [1, 2, 3], "v": [10.0, 20.0, 30.0]}), table="sensors")
        ws.lake.ingest(pa.table({"k": [4, 5], "v": [40.0, 50.0]}), table="sensors")
        for i in range(RUNS):
            with ws.run("api-exp", params={"lr": 0.1 * (i + 1)}, capture=False) as run:
                for step in range(50):
                    run.log_metric("loss", 1.0 / (step + 1 + i), step=step)
                run.log_metric("auc", 0.6 + 0.05 * i)
        ws.deployments.apply(DeploymentSpec.of("risk@champion"), name="risk")
        _prediction_log(ws)
        _alert(ws)
    return home


@pytest.fixture
def ws(server_home: Path, tmp_path: Path) -> Iterator[plinth.Workspace]:
    """A private copy of the API workspace (tests write to it), authentication off."""
    home = tmp_path / "ws"
    shutil.copytree(server_home, home)
    workspace = plinth.Workspace(settings=plinth.Settings(home=home, user="tester"))
    yield workspace
    workspace.close()


@pytest.fixture
def secured(server_home: Path, tmp_path: Path) -> Iterator[plinth.Workspace]:
    """A private copy of the API workspace with authentication on."""
    home = tmp_path / "ws"
    shutil.copytree(server_home, home)
    settings = plinth.Settings(home=home, user="tester", auth=True)
    workspace = plinth.Workspace(settings=settings)
    yield workspace
    workspace.close()


def call(app: Any, body: Callable[[Any], Any]) -> Any:
    """Run ``await body(client)`` against ``app`` in process (no socket)."""
    import httpx

    async def main() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await body(client)

    return asyncio.run(main())


def token(ws: plinth.Workspace, role: str, owner: str | None = None) -> str:
    """The Authorization header of a new token with ``role``."""
    from plinth.governance import tokens

    made = tokens.create_token(ws, f"{role}-key", owner=owner or f"{role}-user", role=role)
    return f"Bearer {made.secret}"


@pytest.fixture
def client(ws: plinth.Workspace) -> Callable[..., Any]:
    """``client(lambda c: c.get(...))``: one request against the app over ``ws``."""
    from plinth.server.app import create_app

    app = create_app(ws)

    def run(body: Callable[[Any], Any]) -> Any:
        return call(app, body)

    return run
