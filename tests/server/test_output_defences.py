"""An endpoint's output policy (labels_only, round, noise) shapes the HTTP answers of both
APIs, in an inference process and in a server thread, while the prediction log keeps the
model's true outputs (monitoring must see the real model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.conftest import Packages
from server.helpers import endpoint, local, oip_columns
from shipyard.stores.predictions import read_log

MODES = ["process", "thread"]


def _predict(s: Any, packages: Packages, rows: int = 20) -> dict[str, Any]:
    answer = s.client.post("/v1/endpoints/iris/predict", json={
        "instances": packages.iris_x.head(rows).to_dict("records")})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _infer(s: Any, packages: Packages, rows: int = 20) -> dict[str, Any]:
    answer = s.client.post("/v2/models/iris/infer", json={
        "inputs": oip_columns(packages.iris_x.head(rows))})
    assert answer.status_code == 200, answer.text
    return {o["name"]: o for o in answer.json()["outputs"]}


def _logged_proba(log_dir: Path, classes: list[Any]) -> np.ndarray:
    rows = read_log(log_dir, "iris").to_pylist()
    return np.array([[r[f"output.proba.{c}"] for c in classes] for r in rows])


@pytest.mark.parametrize("inference", MODES)
def test_labels_only_answers_carry_no_probabilities(
        serve: Callable[..., Any], packages: Packages, inference: str) -> None:
    expected = local(packages.iris, packages.iris_x.head(20))
    with serve(endpoint("iris", packages.iris, labels_only=True, inference=inference)) as s:
        body = _predict(s, packages)
        assert "probabilities" not in body
        assert body["predictions"] == expected.predictions.tolist()
        outputs = _infer(s, packages)
        assert list(outputs) == ["label"]
        assert outputs["label"]["data"] == expected.predictions.tolist()
        asked = s.client.post("/v2/models/iris/infer", json={
            "inputs": oip_columns(packages.iris_x.head(1)),
            "outputs": [{"name": "probabilities"}]})
        assert asked.status_code == 400  # not an output this endpoint gives
        meta = s.client.get("/v2/models/iris").json()
        assert [o["name"] for o in meta["outputs"]] == ["label"]
    assert expected.probabilities is not None
    logged = _logged_proba(s.log_dir, list(expected.classes or []))
    assert len(logged) >= 40  # both answers' rows, with their probabilities
    assert np.allclose(logged[:20], expected.probabilities, rtol=1e-9)


@pytest.mark.parametrize("inference", MODES)
def test_round_rounds_the_answer_not_the_log(
        serve: Callable[..., Any], packages: Packages, inference: str) -> None:
    expected = local(packages.iris, packages.iris_x.head(20))
    assert expected.probabilities is not None
    classes = [str(c) for c in expected.classes or []]
    with serve(endpoint("iris", packages.iris, round=2, inference=inference)) as s:
        body = _predict(s, packages)
        shown = np.array([[row[c] for c in classes] for row in body["probabilities"]])
        assert np.array_equal(shown, np.round(expected.probabilities, 2))
        assert body["predictions"] == expected.predictions.tolist()
        proba = _infer(s, packages)["probabilities"]["data"]
        assert proba == np.round(expected.probabilities, 2).ravel().tolist()
    logged = _logged_proba(s.log_dir, list(expected.classes or []))
    assert np.allclose(logged[:20], expected.probabilities, rtol=1e-12)
    assert not np.array_equal(logged[:20], np.round(logged[:20], 2))  # unrounded


@pytest.mark.parametrize("inference", MODES)
def test_noise_keeps_every_label_and_the_same_question_gets_the_same_answer(
        serve: Callable[..., Any], packages: Packages, inference: str,
        tmp_path: Path) -> None:
    rows = len(packages.iris_x)
    expected = local(packages.iris, packages.iris_x)
    assert expected.probabilities is not None
    classes = [str(c) for c in expected.classes or []]
    secret = tmp_path / "noise.key"
    secret.write_text("a-secret-of-at-least-sixteen-bytes\n")
    with serve(endpoint("iris", packages.iris, noise=0.2, inference=inference),
               output_secret_file=str(secret)) as s:
        body = _predict(s, packages, rows)
        again = _predict(s, packages, rows)
        oip = _infer(s, packages, rows)
    shown = np.array([[row[c] for c in classes] for row in body["probabilities"]])
    assert body["predictions"] == expected.predictions.tolist()  # labels never change
    assert (np.argmax(shown, axis=1) == np.argmax(expected.probabilities, axis=1)).all()
    assert np.allclose(shown.sum(axis=1), 1.0)
    assert shown.min() >= 0 and shown.max() <= 1
    assert np.abs(shown - expected.probabilities).mean() > 0.01  # noise was added
    assert body["probabilities"] == again["probabilities"]  # nothing to average out
    assert np.allclose(np.array(oip["probabilities"]["data"]).reshape(rows, 3), shown)
    logged = _logged_proba(s.log_dir, list(expected.classes or []))
    assert np.allclose(logged[:rows], expected.probabilities, rtol=1e-9)  # the true ones
