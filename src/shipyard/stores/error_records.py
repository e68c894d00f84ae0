"""Failed answers in the prediction log: one ``errors`` row per non-2xx answer that a model
version produced or was routed to (4xx included; the rollout analysis counts status >= 500).

Layout: ``ROOT/errors/endpoint=NAME/date=YYYY-MM-DD/hour=HH/*.parquet``, written by the same
``PredictionLog`` as predictions and feedback (``PredictionLog.append(ErrorRecord(...))``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class ErrorRecord:
    """A request answered with a non-2xx ``status`` by (or routed to) ``model``/``version``;
    ``shadow``: the shadow copy of a request failed (the caller never saw it)."""

    ts: float  # seconds since the epoch
    endpoint: str
    model: str
    version: int
    variant: str
    policy_revision: int
    request_id: str
    status: int
    latency_ms: float
    routing_key: str | None
    shadow: bool = False

    @property
    def rows(self) -> int:
        return 1


def error_table(records: Sequence[ErrorRecord]) -> pa.Table:
    """One ``errors`` segment's rows."""
    return pa.table({
        "request_id": pa.array([r.request_id for r in records], type=pa.string()),
        "ts": pa.array(np.asarray([r.ts * 1e6 for r in records], dtype=np.float64)
                       .astype(np.int64), type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "endpoint": pa.array([r.endpoint for r in records], type=pa.string()),
        "model": pa.array([r.model for r in records], type=pa.string()),
        "version": pa.array([r.version for r in records], type=pa.int32()),
        "variant": pa.array([r.variant for r in records], type=pa.string()),
        "policy_revision": pa.array([r.policy_revision for r in records], type=pa.int32()),
        "status": pa.array([r.status for r in records], type=pa.int32()),
        "latency_ms": pa.array([r.latency_ms for r in records], type=pa.float32()),
        "routing_key": pa.array([r.routing_key or "" for r in records], type=pa.string()),
        "shadow": pa.array([r.shadow for r in records], type=pa.bool_()),
    })
