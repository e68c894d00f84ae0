"""Model classes the MLflow writer logs with ``code_paths`` (tests/mlflow_writer.py)."""

from __future__ import annotations

import numpy as np

try:
    import torch

    class TinyNet(torch.nn.Module):
        def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(n_in, hidden)
            self.out = torch.nn.Linear(hidden, n_out)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=1)
except ImportError:  # pragma: no cover
    pass

try:
    import mlflow.pyfunc

    class Thresholds(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """A score (weights . row + bias) and whether it is positive, as two columns."""

        def __init__(self, weights: list[float], bias: float) -> None:
            self.weights = np.asarray(weights)
            self.bias = bias

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            score = model_input.to_numpy(np.float64) @ self.weights + self.bias
            return score
except ImportError:  # pragma: no cover
    pass
