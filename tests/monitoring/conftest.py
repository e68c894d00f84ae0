"""The labelled breast-cancer rows and two packaged models (a good one and a weak one) that
the offline evaluation tests share."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import shipyard


@pytest.fixture(scope="session")
def cancer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("evaluate")
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    x.columns = [c.replace(" ", "_") for c in x.columns]
    train, test = x.iloc[::2], x.iloc[1::2]
    good = LogisticRegression(max_iter=5000).fit(train, y.iloc[::2])
    weak = LogisticRegression(max_iter=5000, C=1e-5).fit(train[["mean_radius"]].assign(
        **{c: 0.0 for c in train.columns if c != "mean_radius"})[train.columns], y.iloc[::2])
    good_dir = shipyard.package(good, train, name="cancer").save(root / "good")
    weak_dir = shipyard.package(weak, train, name="cancer").save(root / "weak")
    data = test.assign(target=y.iloc[1::2].to_numpy(),
                       size=np.where(test["mean_radius"] > 14, "large", "small"))
    path = root / "test.parquet"
    data.to_parquet(path)
    return {"good": good, "weak": weak, "good_dir": good_dir, "weak_dir": weak_dir,
            "test": test, "y": y.iloc[1::2].to_numpy(), "path": path, "root": root}


