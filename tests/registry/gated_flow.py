"""A small gated pipeline for the CI tests: train on one column, register, gate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from plinth.pipelines import pipeline, step

POLICY = {"rules": ["auc >= champion.auc - 0.002", "p99_latency_ms <= 1000"]}


def frame(seed: int) -> pd.DataFrame:
    """Labelled rows where 'x' predicts the label and 'noise' does not."""
    rng = np.random.default_rng(seed)
    x, noise = rng.normal(size=400), rng.normal(size=400)
    label = (x + rng.normal(scale=0.7, size=400) > 0).astype(int)
    return pd.DataFrame({"x": x, "noise": noise, "delayed": label})


@step
def train(column: str) -> Any:
    from sklearn.linear_model import LogisticRegression

    data = frame(0)
    inputs = data[["x", "noise"]].copy()
    inputs[[c for c in ("x", "noise") if c != column]] = 0.0
    return LogisticRegression().fit(inputs, data["delayed"])


@step
def register(ws: Any, model: Any) -> int:
    return int(ws.models.register(model, "gated", example=frame(0)[["x", "noise"]]).version)


@step(models=["gated@champion"])
def gate(ws: Any, version: int) -> bool:
    from plinth.pipelines import context
    from plinth.registry.gates import gate as run_gate

    result = run_gate(ws, f"gated:{version}", frame(1), "delayed", POLICY,
                      pipeline_run_id=context().pipeline_run_id)  # fmt: skip
    return result.passed


@pipeline
def flow(column: str = "x", rule: str = "") -> Any:
    from plinth.registry.gates import Policy

    Policy.parse([*POLICY["rules"], *([rule] if rule else [])]).validate()
    version = register(model=train(column=column))
    return gate(version=version)
