"""The dashboard tests' data: one scenario (``scenario.py``) built once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ui.scenario import Scenario, build


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    yield build(tmp_path_factory.mktemp("dashboard"))
