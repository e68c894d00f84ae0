"""The labelled rows an evaluation runs on, and their fingerprint.

``location`` is what batch scoring reads (``stores/table_sources.py``): a Parquet or CSV file, a
folder of them, or a URL (``s3://bucket/holdout.parquet`` with the standard AWS environment,
``AWS_ENDPOINT_URL`` included). Each file is read once: its bytes are hashed as they are
parsed, so the fingerprint is of exactly the rows evaluated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.errors import MonitoringError


@dataclass(frozen=True)
class EvaluationRows:
    features: Any  # a DataFrame: every column but the target
    truth: Any  # the target's values
    slices: Any  # a DataFrame of the slice columns
    fingerprint: dict[str, Any]  # location, files, sha256, rows, unlabelled, target


def read_rows(location: str, target: str, slices: Sequence[str],
              text: Collection[str] = ()) -> EvaluationRows:
    """The feature rows, the target and the slice columns at ``location``; a CSV's
    ``text`` columns are read as text (a model's string inputs: "01" stays "01"). Rows whose
    target is missing (null, NaN) are left out and counted (``unlabelled``); no labelled
    row at all is an error. One file's ``sha256`` is its own (``sha256sum``'s); a folder's
    is the SHA-256 of its files' SHA-256 digests in order."""
    import io

    import pandas as pd
    import pyarrow as pa

    from shipyard.stores.table_sources import InputError, first_line, open_source

    try:
        source = open_source(location)
        digest = hashlib.sha256()
        single = ""
        frames = []
        for f in source.files:
            with source.fs.open_input_stream(f.path) as stream:
                body = stream.read()
            single = hashlib.sha256(body).hexdigest()
            digest.update(bytes.fromhex(single))
            frames.append(pd.read_parquet(io.BytesIO(body)) if f.format == "parquet"
                          else pd.read_csv(io.BytesIO(body), dtype=dict.fromkeys(text, str)))
    except InputError as exc:  # names the location already
        raise MonitoringError(f"evaluation data: {exc}") from None
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise MonitoringError(f"cannot read the evaluation data {location}: "
                              f"{first_line(exc)}") from None
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    missing = [c for c in (target, *slices) if c not in frame.columns]
    if missing:
        raise MonitoringError(f"{location} has no column {', '.join(map(repr, missing))}; it "
                              f"has {', '.join(map(str, frame.columns))}")
    if len(frame) == 0:
        raise MonitoringError(f"{location} has no rows to evaluate on")
    unlabelled = frame[target].isna().to_numpy()
    if unlabelled.all():
        raise MonitoringError(f"{location}: every row's {target!r} is missing: no labelled "
                              "row to evaluate on")
    if unlabelled.any():
        frame = frame[~unlabelled].reset_index(drop=True)
    fingerprint = {"location": location, "files": len(source.files),
                   "sha256": single if len(source.files) == 1 else digest.hexdigest(),
                   "rows": len(frame), "unlabelled": int(unlabelled.sum()), "target": target}
    return EvaluationRows(frame.drop(columns=[target]), frame[target].to_numpy(),
                          frame[list(slices)], fingerprint)
