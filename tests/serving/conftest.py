"""Fixtures of the serving tests: three compatible iris classifiers, packaged once.

They differ only in regularisation (``C``), so they take the same inputs but give visibly
different probabilities: a response shows which version produced it.
"""

from __future__ import annotations

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from serving.helpers import FEATURES, IrisModels


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModels:
    data = load_iris(as_frame=True)
    x = data.data.set_axis(FEATURES, axis=1)
    y = data.target
    packages, estimators = {}, {}
    for version, c in ((1, 1.0), (2, 0.01), (3, 0.1)):
        model = LogisticRegression(C=c, max_iter=2000).fit(x, y)
        estimators[version] = model
        packages[version] = shipyard.package(model, x, name="iris", metrics={"C": c})
    v1_dir = tmp_path_factory.mktemp("packages") / "iris"
    packages[1].save(v1_dir)
    return IrisModels(x.to_numpy(), packages, estimators, v1_dir)
