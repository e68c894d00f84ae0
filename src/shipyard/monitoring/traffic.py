"""`VersionTraffic`: what one model version answered over one interval, gathered from every
replica's prediction log (``service/rollout_traffic.py`` builds it), the input of the rollout
analyses (``monitoring/canary.py``, ``monitoring/shadow.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shipyard.types import Array


def _empty() -> Array:
    return np.empty(0)


@dataclass(frozen=True)
class VersionTraffic:
    """One version's traffic over one interval.

    ``requests``: answered plus failed requests routed to it; ``errors``: of those, the ones
    answered with a status >= 500; ``latencies_ms``: one per answered request;
    ``predictions``: one per answered row (labels or numbers); ``probabilities``: rows x
    classes (columns in ``class_labels`` order) when the model gives them; ``truth`` and
    ``labelled_predictions``: the rows that got a label through feedback, aligned."""

    version: str
    requests: int = 0
    errors: int = 0
    latencies_ms: Array = field(default_factory=_empty)
    predictions: Array = field(default_factory=_empty)
    probabilities: Array | None = None
    class_labels: tuple[str, ...] | None = None
    truth: Array | None = None
    labelled_predictions: Array | None = None

    @property
    def answered(self) -> int:
        """Requests answered (not failed)."""
        return int(self.latencies_ms.size)

    @property
    def labelled(self) -> int:
        """Rows with a label."""
        return 0 if self.truth is None else int(self.truth.size)
