"""Batch scoring: a dataset in, predictions out, on this machine's cores or on Ray Data.

``predict_batch`` (``batch.py``) is the entry point; ``sources`` reads the input as record
batches, ``core`` scores one batch (validation, rejects, the model call), ``local`` and
``ray_engine`` run it on every core or on a Ray cluster, ``writers`` and ``publish`` write
aside and publish, ``prediction_log`` logs scored rows for monitoring, ``progress`` draws.
"""

from shipyard.scoring.batch import BatchSummary, RejectLimitError, predict_batch

__all__ = ["BatchSummary", "RejectLimitError", "predict_batch"]
