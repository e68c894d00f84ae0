"""Scored rows into the prediction log, with the columns online traffic gets, so
``shipyard monitor run ENDPOINT`` reads a batch run as it reads served requests.

Each scored batch is one logged request: its request id is ``BATCH_ID-FIRSTROW`` (the run's
batch id and the input row number of its first row; on Ray ``BATCH_ID-PART.ROW``, the part of
the input and the row within it; ``row`` is the row among the batch's scored ones), its
routing key is the batch id and its latency is the time the batch took to score.
Segments are written as batches are scored (the log's own write-then-rename), not held
back until the run ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.names import check_endpoint_name
from shipyard.scoring.core import Scored
from shipyard.stores.log_location import check_bucket, log_root
from shipyard.stores.predictions import PredictionBatch, PredictionLog


class BatchLog:
    """Appends scored batches of one run to the prediction log under ``endpoint``."""

    def __init__(self, root: str | Path, endpoint: str, *, model: str, version: int,
                 batch_id: str, class_labels: Any = None) -> None:
        self.endpoint = check_endpoint_name(endpoint)
        self.model, self.version = model, version
        self.batch_id = batch_id
        self.class_labels = class_labels
        resolved = log_root(root)
        if not isinstance(resolved, Path):  # a typo'd bucket fails the run, not every write
            check_bucket(resolved)
        self.log = PredictionLog(resolved)
        self.rows = 0

    def append(self, scored: Scored, key: str | None = None) -> None:
        """Log the good rows of ``scored``; ``key`` names the batch in its request id
        (default: its first row's input row number)."""
        if scored.inputs is None or scored.outputs is None:
            return  # every row rejected
        rows = scored.rows - scored.rejected
        part = key if key is not None else scored.first_row
        self.log.append(PredictionBatch(
            request_ids=[f"{self.batch_id}-{part}"], row_counts=[rows],
            latency_ms=[scored.seconds * 1000.0], routing_keys=[self.batch_id],
            ts=[scored.ts], endpoint=self.endpoint, model=self.model, version=self.version,
            inputs=scored.inputs, outputs=scored.outputs, class_labels=self.class_labels))
        self.rows += self.log.flush()

    def close(self) -> None:
        self.log.close()
