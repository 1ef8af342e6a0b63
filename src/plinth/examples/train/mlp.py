"""A small PyTorch MLP classifier on synthetic data: the same script alone, under DDP and Ray.

The data (3 classes, 16 features, labelled by a fixed random "teacher" network plus noise)
and the initial weights come from the seed, so every run with the same parameters is the
same. Under ``--nproc N`` each rank takes its shard of every epoch with a per-rank batch of
``batch_size / N``; DDP averages the gradients, so each step is the step one process takes on
the whole batch, and the validation loss (each rank's shard, all-reduced) matches the
single-process run to float rounding. Rank 0 logs ``train_loss`` and ``val_loss`` per epoch
and saves the final weights as the artifact ``model.pt``::

    plinth train src/plinth/examples/train/mlp.py
    plinth train src/plinth/examples/train/mlp.py --nproc 2 --param epochs=10
    plinth train src/plinth/examples/train/mlp.py --ray --workers 2
"""

from __future__ import annotations

from typing import Any

EXPERIMENT = "mlp"
DEFAULTS: dict[str, Any] = {
    "epochs": 5,
    "batch_size": 64,
    "hidden": 32,
    "lr": 0.05,
    "momentum": 0.9,
    "seed": 7,
    "train_size": 1024,
    "val_size": 256,
    "features": 16,
    "classes": 3,
}


def make_data(params: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """Synthetic features and labels for training and validation, fixed by the seed.

    Example:
        >>> x, y, vx, vy = make_data({**DEFAULTS, "train_size": 8, "val_size": 4})
        >>> tuple(x.shape), tuple(vy.shape)
        ((8, 16), (4,))
    """
    import torch

    generator = torch.Generator().manual_seed(int(params["seed"]))
    n = int(params["train_size"]) + int(params["val_size"])
    features, classes = int(params["features"]), int(params["classes"])
    x = torch.randn(n, features, generator=generator)
    teacher_in = torch.randn(features, 24, generator=generator)
    teacher_out = torch.randn(24, classes, generator=generator)
    logits = torch.tanh(x @ teacher_in) @ teacher_out
    noise = 0.5 * torch.randn(n, classes, generator=generator)
    y = (logits + noise).argmax(dim=1)
    cut = int(params["train_size"])
    return x[:cut], y[:cut], x[cut:], y[cut:]


def check_shapes(params: dict[str, Any], world: int) -> None:
    """Insist on sizes that split evenly, which keeps DDP equal to one process."""
    from plinth.errors import ConfigError

    if int(params["batch_size"]) % world or int(params["train_size"]) % int(params["batch_size"]):
        raise ConfigError(
            f"batch_size {params['batch_size']} must divide train_size {params['train_size']} "
            f"and be a multiple of the {world} processes.",
            hint="Pick sizes that split evenly, e.g. batch_size=64, train_size=1024.",
        )
    if int(params["val_size"]) % world:
        raise ConfigError(
            f"val_size {params['val_size']} must be a multiple of the {world} processes.",
            hint="Pick e.g. val_size=256.",
        )


def main() -> dict[str, float]:
    """Train, log per-epoch losses from rank 0, save the weights; return the last losses."""
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    import plinth
    from plinth.training import distributed, params, save_checkpoint

    p = params(DEFAULTS)
    rank, world, device = distributed.setup()
    check_shapes(p, world)
    torch.set_num_threads(1)
    seed = int(p["seed"])
    x_train, y_train, x_val, y_val = make_data(p)
    train_set, val_set = TensorDataset(x_train, y_train), TensorDataset(x_val, y_val)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    val_sampler = DistributedSampler(val_set, num_replicas=world, rank=rank, shuffle=False)
    per_rank = int(p["batch_size"]) // world
    loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler)
    val_loader = DataLoader(val_set, batch_size=256, sampler=val_sampler)

    torch.manual_seed(seed)
    hidden = int(p["hidden"])
    net = torch.nn.Sequential(
        torch.nn.Linear(int(p["features"]), hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, int(p["classes"])),
    ).to(device)
    model = DistributedDataParallel(net) if world > 1 else net
    optimizer = torch.optim.SGD(
        model.parameters(), lr=float(p["lr"]), momentum=float(p["momentum"])
    )
    loss_fn = torch.nn.CrossEntropyLoss()

    losses: dict[str, float] = {}
    ws = plinth.Workspace()
    with ws.run(EXPERIMENT, params=p) as run:
        for epoch in range(int(p["epochs"])):
            sampler.set_epoch(epoch)
            model.train()
            total, batches = 0.0, 0
            for features, labels in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(features.to(device)), labels.to(device))
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                batches += 1
            model.eval()
            val_total, val_count = 0.0, 0
            with torch.no_grad():
                for features, labels in val_loader:
                    out = model(features.to(device))
                    target = labels.to(device)
                    val_total += float(
                        torch.nn.functional.cross_entropy(out, target, reduction="sum")
                    )
                    val_count += len(labels)
            # Equal shards on every rank: the mean of the ranks' means is the global mean.
            losses = {
                "train_loss": distributed.all_reduce_mean(total / max(batches, 1)),
                "val_loss": distributed.all_reduce_mean(val_total / max(val_count, 1)),
            }
            run.log_metrics(losses, step=epoch)
            if distributed.is_main():
                print(
                    f"epoch {epoch + 1}/{p['epochs']}  train_loss {losses['train_loss']:.6f}  "
                    f"val_loss {losses['val_loss']:.6f}",
                    flush=True,
                )
        save_checkpoint(net.state_dict(), "model.pt", run=run)
    distributed.cleanup()
    return losses


if __name__ == "__main__":
    main()
