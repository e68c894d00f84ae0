"""What ``compare()`` returns: frozen results, ``to_dict()`` for JSON, ``rows()`` for tables.

Rendering (rich tables, colours) belongs to the faces; ``__str__`` is a plain-text summary
for logs and the REPL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True)
class TestResult:
    """One test's outcome: ``drifted`` = p_adjusted < alpha and effect_size >= threshold.
    ``p_value`` is None when the test was skipped (``detail["skipped"]`` says why)."""

    __test__ = False  # not a pytest class, whatever its name

    method: str
    statistic: float
    p_value: float | None
    p_adjusted: float | None
    effect_size: float
    effect_name: str
    threshold: float
    drifted: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class ColumnDrift(TestResult):
    """One column's test (``kind``: numeric, categorical or binary)."""

    name: str
    kind: str


@dataclass(frozen=True, kw_only=True)
class MultivariateResult(TestResult):
    """One multivariate test on the row samples: ``mmd``, ``domain_classifier`` or
    ``pca_reconstruction``."""


@dataclass(frozen=True)
class DriftReport:
    """Per-column results (in column order), the share of tested columns that drifted, the
    multivariate results, and the dataset verdict (share >= ``share_threshold`` or any
    multivariate test drifted)."""

    columns: dict[str, ColumnDrift]
    drift_share: float
    dataset_drift: bool
    multivariate: tuple[MultivariateResult, ...]
    rows_reference: int
    rows_current: int
    alpha: float = 0.05
    correction: str = "bh"
    share_threshold: float = 0.5
    only_reference: tuple[str, ...] = ()
    only_current: tuple[str, ...] = ()

    @property
    def drifted_columns(self) -> list[str]:
        return [name for name, col in self.columns.items() if col.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite numbers become None)."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": _number(self.drift_share),
            "drifted_columns": self.drifted_columns,
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "alpha": self.alpha,
            "correction": self.correction,
            "share_threshold": self.share_threshold,
            "only_reference": list(self.only_reference),
            "only_current": list(self.only_current),
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
            "multivariate": [m.to_dict() for m in self.multivariate],
        }

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per column, then per multivariate test: what a table shows."""
        out = [{"name": c.name, "kind": c.kind, "method": c.method, "statistic": c.statistic,
                "p_adjusted": c.p_adjusted, "effect": f"{c.effect_name}",
                "effect_size": c.effect_size, "threshold": c.threshold, "drifted": c.drifted}
               for c in self.columns.values()]
        out += [{"name": "(rows)", "kind": "multivariate", "method": m.method,
                 "statistic": m.statistic, "p_adjusted": m.p_adjusted,
                 "effect": m.effect_name, "effect_size": m.effect_size,
                 "threshold": m.threshold, "drifted": m.drifted}
                for m in self.multivariate]
        return out

    def __str__(self) -> str:
        tested = [c for c in self.columns.values() if "skipped" not in c.detail]
        head = (f"drift: {len(self.drifted_columns)}/{len(tested)} columns drifted "
                f"({self.drift_share:.0%}); dataset drift: "
                f"{'YES' if self.dataset_drift else 'no'} "
                f"[{self.rows_reference} vs {self.rows_current} rows, alpha {self.alpha}, "
                f"{self.correction}]")
        lines = [head, f"{'column':<24} {'method':<18} {'p_adj':>9} {'effect':>22} drifted"]
        for row in self.rows():
            effect = f"{row['effect']} {_fmt(row['effect_size'])}>={_fmt(row['threshold'])}"
            lines.append(f"{str(row['name'])[:24]:<24} {row['method']:<18} "
                         f"{_fmt(row['p_adjusted']):>9} {effect:>22} "
                         f"{'YES' if row['drifted'] else '-'}")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.3g}"


def _number(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return _number(value)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars made plain, tuples made lists and non-finite floats None:
    what ``json.dumps`` writes as strict JSON."""
    return _jsonable(value)
