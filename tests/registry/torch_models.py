"""A small network defined in an importable module, as a pickled torch module requires."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    """Two linear layers with a ReLU between them."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(inputs, 4)
        self.out = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))
