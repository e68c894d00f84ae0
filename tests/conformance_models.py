"""Importable model classes for the runtime conformance tests."""

from typing import Any

import numpy as np
import torch


class TinyMLP(torch.nn.Module):
    def __init__(self, n_in: int = 4, hidden: int = 8, n_out: int = 3) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class Threshold:
    """A rule-based model: 1 where the first column exceeds a cut-off."""

    def __init__(self, column: str = "sepal length (cm)", cut: float = 5.8) -> None:
        self.column = column
        self.cut = cut

    def predict(self, columns: dict[str, Any]) -> np.ndarray:
        return (np.asarray(columns[self.column]) > self.cut).astype(np.int64)
