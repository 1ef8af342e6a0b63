"""PyTorch flavor: ``torch.nn.Module`` objects, as TorchScript or as a pickled module.

A TorchScript module (``torch.jit.script``/``trace``) is stored with ``torch.jit.save`` and
loaded without unpickling Python objects. Any other module is stored with ``torch.save``, a
pickle: its class must be importable where it is loaded, and the registry loads it only when
the bytes match the catalog. Models are loaded on the CPU and predict in inference mode;
DataFrames become float32 tensors with the columns in the signature's order.

Example:
    >>> # files, meta = save(net); predict(load(files, meta), array, meta)
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from plinth.registry.flavors import class_path, derives_from

NAME = "pytorch"
FILE = "model.pt"


def matches(model: Any) -> bool:
    """Whether the object is a ``torch.nn.Module`` (including TorchScript modules)."""
    return derives_from(model, "torch.nn.modules.module", "Module") or derives_from(
        model, "torch.jit", "ScriptModule"
    )


def _scripted(model: Any) -> bool:
    return derives_from(model, "torch.jit", "ScriptModule")


def save(model: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """``torch.jit.save`` for TorchScript, ``torch.save`` (a pickle) for other modules."""
    import torch

    buffer = io.BytesIO()
    if _scripted(model):
        torch.jit.save(model, buffer)
        fmt = "torchscript"
    else:
        torch.save(model, buffer)
        fmt = "pickle"
    meta = {
        "class": class_path(model),
        "library": "torch",
        "version": torch.__version__,
        "format": fmt,
    }
    return {FILE: buffer.getvalue()}, meta


def unpickles(meta: Mapping[str, Any]) -> bool:
    """Whether loading unpickles: for every module not stored as TorchScript."""
    return meta.get("format") != "torchscript"


def load(files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Any:
    """The module on the CPU, in evaluation mode."""
    import torch

    buffer = io.BytesIO(files[FILE])
    if not unpickles(meta):
        model = torch.jit.load(buffer, map_location="cpu")
    else:
        model = torch.load(buffer, map_location="cpu", weights_only=False)
    model.eval()
    return model


def to_tensor(data: Any) -> Any:
    """A DataFrame (as float32) or array as a CPU tensor.

    Example:
        >>> import numpy as np
        >>> to_tensor(np.zeros((2, 3), "float32")).shape
        torch.Size([2, 3])
    """
    import numpy as np
    import torch

    if hasattr(data, "to_numpy") and hasattr(data, "columns"):
        data = data.to_numpy(dtype=np.float32)
    array = np.ascontiguousarray(data)
    if not array.flags.writeable:
        array = array.copy()  # torch warns on (and may not honour) read-only memory
    return torch.from_numpy(array)


def predict(model: Any, data: Any, meta: Mapping[str, Any]) -> Any:
    """The module's output on the data, as a NumPy array (the first output of a tuple)."""
    import torch

    with torch.inference_mode():
        output = model(to_tensor(data))
    if isinstance(output, tuple | list):
        output = output[0]
    return output.detach().cpu().numpy()
