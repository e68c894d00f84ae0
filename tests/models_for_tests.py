"""Importable models for the packaging tests: packages rebuild them by their import path."""

from typing import Any

import numpy as np
import torch

HOUR_NS = 3_600_000_000_000


class MLP(torch.nn.Module):
    """A small classifier network returning one logit per class."""

    def __init__(self, n_in: int = 4, hidden: int = 16, n_out: int = 3) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class LinearScorer:
    """A hand-written model: ``score = weight * a + b + bias``; ``flag`` marks scores above 0.

    ``predict`` takes anything indexable by column name (a DataFrame or a dict of arrays).
    """

    def __init__(self, weight: float = 1.0, bias: float = 0.0) -> None:
        self.weight = weight
        self.bias = bias

    def predict(self, x: Any) -> dict[str, np.ndarray]:
        a = np.asarray(x["a"], dtype=np.float64)
        b = np.asarray(x["b"], dtype=np.float64)
        score = self.weight * a + b + self.bias
        return {"score": score, "flag": (score > 0).astype(np.int64)}


class HoursSinceEpoch:
    """Returns the ``when`` column as whole hours since 1970-01-01 UTC (checks datetime input)."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def predict(self, x: Any) -> np.ndarray:
        stamps = np.asarray(x["when"], dtype="datetime64[ns]").astype(np.int64)
        return stamps // HOUR_NS + self.offset
