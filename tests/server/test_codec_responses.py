"""``codec.simple_responses`` (a batch's answers, as the inference process makes them) gives
each request exactly the bytes ``simple_response`` gives for that request's own rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.packaging.signature import ColumnSpec, Signature
from shipyard.protocol import codec


def sig(class_labels: tuple[Any, ...] | None) -> Signature:
    return Signature(kind="tabular", inputs=(ColumnSpec("x", "float64", (-1,), False),),
                     task="classification" if class_labels else "regression",
                     class_labels=class_labels)


def outputs_for(kind: str, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if kind == "int":
        return {"label": rng.integers(0, 3, rows), "probabilities": rng.random((rows, 3))}
    if kind == "bool":
        return {"label": rng.integers(0, 2, rows).astype(bool),
                "probabilities": rng.random((rows, 2)).astype(np.float32)}
    if kind == "float":  # float labels: serialised through numpy, not as Python values
        return {"label": rng.integers(0, 3, rows).astype(np.float32),
                "probabilities": rng.random((rows, 3))}
    return {"value": rng.random(rows).astype(np.float32), "extra": rng.random((rows, 2))}


LABELS = {"int": ("a", "b", "c"), "bool": (False, True), "float": (0.0, 1.0, 2.0),
          "regression": None}


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(LABELS)), sizes=st.lists(st.integers(1, 4), min_size=1,
                                                            max_size=8),
       seed=st.integers(0, 2**16))
def test_each_answer_is_what_simple_response_gives_for_its_rows(kind: str, sizes: list[int],
                                                                seed: int) -> None:
    rng = np.random.default_rng(seed)
    outputs = outputs_for(kind, sum(sizes), rng)
    signature = sig(LABELS[kind])
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    ids = [f"req-{i}" for i in range(len(sizes))]
    answers = codec.simple_responses(outputs, signature, model="m", version=3,
                                     request_ids=ids, bounds=bounds)
    assert answers == [
        codec.simple_response({k: v[a:b] for k, v in outputs.items()}, signature, model="m",
                              version=3, request_id=rid)
        for rid, (a, b) in zip(ids, bounds, strict=True)]


def test_class_names_follow_each_models_own_labels_when_labels_compare_equal() -> None:
    """0, 0.0 and False compare and hash equal: one model's class names must never show up
    in another's answers (a cache keyed by the labels once mixed them up)."""
    outputs = {"label": np.array([1]), "probabilities": np.array([[0.25, 0.75]])}
    seen = []
    for labels in ((0.0, 1.0), (0, 1), (False, True), (0.0, 1.0)):
        body = codec.simple_response(outputs, sig(labels), model="m", version=1,
                                     request_id="r")
        seen.append(list(orjson.loads(body)["probabilities"][0]))
        batch = codec.simple_responses(outputs, sig(labels), model="m", version=1,
                                       request_ids=["r"], bounds=[(0, 1)])
        assert batch == [body]
    assert seen == [["0.0", "1.0"], ["0", "1"], ["False", "True"], ["0.0", "1.0"]]
