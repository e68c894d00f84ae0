"""The quickstart's last step: batch-score a Parquet file with the production version, and
the command that does the same on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from shipyard.settings import Settings

MODEL = "models:/breast-cancer@production"


def score_a_file(console: Console, settings: Settings, directory: Path, rows: Any,
                 step: int) -> None:
    """Write ``rows`` (a DataFrame of held-out rows) as Parquet with an ``id`` column and two
    rows the signature refuses, score it with ``shipyard.predict_batch``, and print what it
    did: scored and rejected rows, the output and rejects files, and the Ray command."""
    import numpy as np
    import pandas as pd

    from shipyard.scoring import predict_batch

    frame = rows.reset_index(drop=True).copy()
    bad = frame.head(2).copy()
    bad.iloc[:, 0] = np.nan  # a missing value where the signature wants a number
    frame = pd.concat([frame, bad], ignore_index=True)
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    batch_dir = directory.parent / f"{directory.name}-batch"
    batch_dir.mkdir(parents=True, exist_ok=True)
    source = batch_dir / "to-score.parquet"
    frame.to_parquet(source, index=False)
    output = batch_dir / "scores.parquet"
    summary = predict_batch(MODEL, source, output, passthrough=["id"],
                            registry=settings.registry_url, progress=False)
    console.print(f"{step}. batch-scored [bold]{source}[/] with {MODEL}: {summary.scored} rows "
                  f"scored, {summary.rejected} rejected, in {summary.seconds:.2f}s; "
                  f"predictions and probabilities beside each id in [bold]{output}[/]")
    if summary.rejects:
        reason = next(iter(summary.reasons), "")
        console.print(f"   the rejected rows, each with its row number and reason, are in "
                      f"{summary.rejects} ({reason})")
    console.print(f"   the same on every core of a Ray cluster: [cyan]shipyard predict {MODEL} "
                  f"--input {source} --output {batch_dir / 'scores-ray'} --passthrough id "
                  "--engine ray[/] (add --ray-address ADDR for a cluster; pip install "
                  "'shipyard-ml[ray]')")
