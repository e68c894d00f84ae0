"""The model zoo (tests/model_zoo.py): ~35 common estimators and pipelines, each packaged
with held-out rows, saved and loaded. Each must have the right task and outputs, run on ONNX
unless its case states why not (the fallback reason naming that root cause), and answer as
the native model does on held-out rows: labels exactly, probabilities and values within 1e-4
(relative to max(1, |y|) for values)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import shipyard
from model_zoo import CASES, Case, run_case
from models_for_tests import LinearScorer
from shipyard.errors import ConversionError


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_zoo_model_packages_with_parity(case: Case, tmp_path: Path) -> None:
    result = run_case(case, tmp_path)
    assert result.problems == [], (
        f"{case.name}: runtime {result.runtime}, max diff {result.max_diff:.3g}: "
        + "; ".join(result.problems))


def test_a_custom_model_its_kwargs_do_not_rebuild_is_refused() -> None:
    """The python runtime rebuilds the class from model_kwargs: without them, a
    LinearScorer(weight=2) would be packaged as LinearScorer(weight=1), answering otherwise."""
    frame = pd.DataFrame({"a": np.linspace(-1, 1, 50), "b": np.linspace(2, 0, 50)})
    with pytest.raises(ConversionError, match="answers differently"):
        shipyard.package(LinearScorer(weight=2.0), frame, name="scorer")
    with pytest.raises(ConversionError, match="cannot rebuild"):
        shipyard.package(LinearScorer(), frame, name="scorer", model_kwargs={"scale": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pkg = shipyard.package(LinearScorer(weight=2.0), frame, name="scorer",
                               model_kwargs={"weight": 2.0})
    assert pkg.manifest.runtime.options["init_kwargs"] == {"weight": 2.0}
