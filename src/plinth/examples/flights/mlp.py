"""A small PyTorch MLP for the flights delay target, trainable on one process or under DDP.

The same features and the same January-May / June split as the LightGBM model. Under
``plinth train --nproc N`` each rank trains on its shard of every epoch with a per-rank batch
of ``batch_size / N`` (so the optimisation matches one process), gradients are averaged by
DDP, and rank 0 logs the all-reduced training loss and the validation loss and AUC per epoch::

    plinth train src/plinth/examples/flights/mlp.py --nproc 2
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from plinth.examples.flights.train import CATEGORICAL, EXPERIMENT, split
from plinth.tracking.evaluation import roc_auc

DEFAULTS: dict[str, Any] = {
    "epochs": 4,
    "batch_size": 1024,
    "hidden": 64,
    "learning_rate": 2e-3,
    "seed": 13,
}


def design_matrix(training: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardized numeric inputs plus one-hot categories, for training and validation.

    Missing values become the training mean (0 after standardizing); statistics come from
    the training months only.

    Example:
        >>> # x_train, y_train, x_valid, y_valid = design_matrix(training_set)
    """
    import pandas as pd

    data = split(training)
    numeric = [c for c in data.features if c not in CATEGORICAL]
    train_num = data.train[numeric].astype("float64")
    valid_num = data.valid[numeric].astype("float64")
    mean, std = train_num.mean(), train_num.std().replace(0, 1.0)
    parts_train = [((train_num - mean) / std).fillna(0.0)]
    parts_valid = [((valid_num - mean) / std).fillna(0.0)]
    for column in CATEGORICAL:
        levels = sorted(data.train[column].dropna().astype(str).unique())
        kinds = pd.CategoricalDtype(levels)
        parts_train.append(pd.get_dummies(data.train[column].astype(str).astype(kinds)))
        parts_valid.append(pd.get_dummies(data.valid[column].astype(str).astype(kinds)))
    x_train = pd.concat(parts_train, axis=1).to_numpy(dtype=np.float32)
    x_valid = pd.concat(parts_valid, axis=1).to_numpy(dtype=np.float32)
    return x_train, data.y_train.astype(np.float32), x_valid, data.y_valid.astype(np.float32)


def train(ws: Any, training: Any, params: dict[str, Any]) -> dict[str, float]:
    """Train the MLP on this process's rank; return the final validation figures.

    Example:
        >>> # train(ws, ws.features.training_set("ts_..."), DEFAULTS)
    """
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    from plinth.training import distributed

    rank, world, device = distributed.setup()
    torch.manual_seed(int(params["seed"]))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    x_train, y_train, x_valid, y_valid = design_matrix(training)
    dataset = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, seed=int(params["seed"]))
    loader = DataLoader(dataset, batch_size=max(1, int(params["batch_size"]) // world),
                        sampler=sampler)  # fmt: skip
    hidden = int(params["hidden"])
    model = torch.nn.Sequential(
        torch.nn.Linear(x_train.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    ).to(device)
    if world > 1:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["learning_rate"]))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    valid_x = torch.from_numpy(x_valid).to(device)
    valid_y = torch.from_numpy(y_valid).to(device)
    figures: dict[str, float] = {}
    with ws.run(EXPERIMENT, params={**params, "model": "mlp", "world_size": world}) as run:
        run.use(training)
        for epoch in range(int(params["epochs"])):
            sampler.set_epoch(epoch)
            model.train()
            total, batches = 0.0, 0
            for features, labels in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(features.to(device)).squeeze(1), labels.to(device))
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                batches += 1
            train_loss = distributed.all_reduce_mean(total / max(batches, 1))
            model.eval()
            with torch.no_grad():
                logits = model(valid_x).squeeze(1)
                valid_loss = float(loss_fn(logits, valid_y))
                scores = torch.sigmoid(logits).cpu().numpy()
            figures = {
                "train_loss": train_loss,
                "valid_loss": valid_loss,
                "valid_auc": roc_auc(y_valid, scores),
            }
            run.log_metrics(figures, step=epoch)
    distributed.cleanup()
    return figures


def main() -> None:
    """Script entry point: train on the newest recorded flights training set."""
    import plinth
    from plinth.examples.flights.train import newest_training_set
    from plinth.training import params

    ws = plinth.Workspace()
    figures = train(ws, newest_training_set(ws), params(DEFAULTS))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"validation loss {figures['valid_loss']:.4f}, AUC {figures['valid_auc']:.3f}")


if __name__ == "__main__":
    main()
