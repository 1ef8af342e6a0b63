"""Small helpers that make one training script work alone, under torchrun and under Ray Train.

``setup()`` initialises ``torch.distributed`` from torchrun's environment when there is more
than one process (gloo on CPU, nccl with CUDA); under Ray Train the process group already
exists and is used as it is. Run alone, everything degrades to one process: rank 0 of 1,
``all_reduce_mean`` returns its input, ``barrier`` returns at once.

Example:
    >>> from plinth.training import distributed
    >>> rank, world_size, device = distributed.setup()
    >>> (rank, world_size, str(device))
    (0, 1, 'cpu')
    >>> distributed.all_reduce_mean(2.5)
    2.5
    >>> distributed.cleanup()
"""

from __future__ import annotations

import os
from typing import Any

_state: dict[str, Any] = {"owned": False, "device": None}


def _dist() -> Any:
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def setup(backend: str | None = None) -> tuple[int, int, Any]:
    """Join the job's process group (if there is one) and return ``(rank, world_size, device)``.

    ``device`` is ``cuda:LOCAL_RANK`` when CUDA is available (the Ray Train device under
    Ray), else the CPU.

    Example:
        >>> rank, world_size, device = setup()
        >>> world_size >= 1
        True
    """
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world_size > 1 and dist.is_available() and not dist.is_initialized():
        chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(chosen)
        _state["owned"] = True
    device = _device()
    _state["device"] = device
    return rank(), world(), device


def _device() -> Any:
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    if os.environ.get("PLINTH_LAUNCHER") == "ray":
        try:
            from ray.train.torch import get_device

            return get_device()
        except Exception:  # not inside a Ray Train worker after all
            pass
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0") or 0))
    torch.cuda.set_device(device)
    return device


def rank() -> int:
    """This process's global rank (0 when not distributed).

    Example:
        >>> rank()
        0
    """
    dist = _dist()
    if dist is not None:
        return int(dist.get_rank())
    return int(os.environ.get("RANK", "0") or 0)


def world() -> int:
    """The number of processes in the job (1 when not distributed).

    Example:
        >>> world()
        1
    """
    dist = _dist()
    return int(dist.get_world_size()) if dist is not None else 1


def is_main() -> bool:
    """Whether this is rank 0, the process that logs and saves.

    Example:
        >>> is_main()
        True
    """
    return rank() == 0


def all_reduce_mean(value: Any) -> Any:
    """The mean of ``value`` over all ranks: a float for a number, a tensor for a tensor.

    With equal shard sizes on every rank, the mean of per-rank means is the global mean.

    Example:
        >>> all_reduce_mean(0.5)
        0.5
    """
    import torch

    dist = _dist()
    is_tensor = isinstance(value, torch.Tensor)
    if dist is None:
        return value.clone() if is_tensor else float(value)
    device = _state["device"]
    if device is None or dist.get_backend() != "nccl":
        device = torch.device("cpu")
    if is_tensor:
        tensor = value.detach().to(device=device, dtype=torch.float64, copy=True)
    else:
        tensor = torch.tensor(float(value), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= dist.get_world_size()
    if is_tensor:
        return tensor.to(device=value.device, dtype=value.dtype)
    return float(tensor.item())


def barrier() -> None:
    """Wait until every rank gets here (returns at once when not distributed).

    Example:
        >>> barrier()
    """
    dist = _dist()
    if dist is not None:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group if :func:`setup` created it (Ray Train's is left to Ray).

    Example:
        >>> cleanup()
    """
    dist = _dist()
    if dist is not None and _state["owned"]:
        dist.destroy_process_group()
    _state["owned"] = False
