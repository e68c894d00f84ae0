"""Multiple-testing corrections shared by drift (across columns) and quality (across checks)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Literal, TypeVar

import numpy as np

Correction = Literal["bh", "bonferroni", "none"]
K = TypeVar("K", bound=Hashable)


def adjust(p_values: Mapping[K, float | None], correction: str) -> dict[K, float | None]:
    """Adjusted p-values (BH step-up, Bonferroni, or none); None stays None."""
    keys = [k for k, p in p_values.items() if p is not None]
    out: dict[K, float | None] = dict.fromkeys(p_values)
    if not keys:
        return out
    p = np.array([p_values[k] for k in keys], dtype=np.float64)
    if correction == "bonferroni":
        adjusted = np.minimum(1.0, p * len(p))
    elif correction == "bh":
        order = np.argsort(p)
        ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adjusted = np.empty_like(p)
        adjusted[order] = np.minimum(1.0, ranked)
    else:
        adjusted = p
    out.update({k: float(v) for k, v in zip(keys, adjusted, strict=True)})
    return out
