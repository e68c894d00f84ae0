"""A live ``shipyard serve`` (two workers, a registry endpoint in a canary rollout, a
monitor on a short schedule) that has had traffic and feedback, for the Prometheus tests;
and the Prometheus tools, which CI installs (``scripts/ensure-tools.sh``)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from rollouts.harness import until
from serving.helpers import FEATURES, ROOT, ServerProcess
from shipyard.registry import Registry
from shipyard.routing.plans import CanaryPlan
from shipyard.settings import Settings

RULES = ROOT / "docs" / "prometheus" / "shipyard-rules.yml"
RULE_TESTS = ROOT / "docs" / "prometheus" / "shipyard-rules.test.yml"
DASHBOARDS = sorted((ROOT / "docs" / "grafana").glob("*.json"))
ENDPOINT = "iris"


def tool(name: str) -> str:
    """The path of a Prometheus binary; missing: a failure under CI (which installs it), a
    skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        why = (f"`{name}` is not installed (Debian: apt-get install prometheus; "
               "scripts/ensure-tools.sh does it)")
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


def samples(text: str) -> list[tuple[str, str]]:
    """(sample name, the rest of the line) of each sample line of a Prometheus text page."""
    out = []
    for line in text.splitlines():
        found = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)", line)
        if found and not line.startswith("#"):
            out.append((found.group(1), found.group(2)))
    return out


@dataclass
class Live:
    server: ServerProcess
    scrape: Callable[[], str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("live")
    home = root / "home"
    home.mkdir()
    registry = Registry(settings=Settings.from_env({"SHIPYARD_HOME": str(home)}),
                        actor="tester", auto_upgrade=True)
    iris = load_iris()
    x, y = pd.DataFrame(iris.data, columns=FEATURES), iris.target
    for version, c in ((1, 1.0), (2, 0.8)):
        registry.register(shipyard.package(LogisticRegression(C=c, max_iter=2000).fit(x, y),
                                           x, name=ENDPOINT),
                          alias="production" if version == 1 else None)
    registry.rollouts.deploy(ENDPOINT, f"{ENDPOINT}/1", reason="first version")
    config = root / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "poll_interval_s": 0.3, "flush_interval_s": 0.2, "metrics_top_features": 3,
        "endpoints": [{"name": ENDPOINT, "model": f"models:/{ENDPOINT}@production",
                       "trust": True}],
        "monitor": {"every": 0.5, "last": 60, "min_rows": 30,
                    "rules": ["drift_share > 0.2", "accuracy < 0.1"]}}))
    server = ServerProcess(["--config", str(config), "--log-dir", str(root / "logs"),
                            "--workers", "2"], home=home, out=root / "server.out")
    try:
        server.wait_ready()
        # a canary (a hot swap on each worker) that stays on its first step for the test:
        # its first check is an hour away
        registry.rollouts.start_canary(ENDPOINT, f"{ENDPOINT}/2",
                                       CanaryPlan(steps=(30.0, 100.0), interval_s=3600.0),
                                       reason="prometheus test")
        _traffic(server.base, x.to_numpy(), y)

        def scrape() -> str:
            return httpx.get(f"{server.base}/metrics", timeout=10).text

        def complete() -> bool:
            """Every family the dashboards and rules read has values, in the answer of
            each worker: six scrapes on new connections (either worker answers; each one's
            watcher reads the rollout step on its own poll)."""
            for _ in range(6):
                page = scrape()
                names = {n for n, _ in samples(page)}
                if not ({"shipyard_drift_share", "shipyard_model_metric",
                         "shipyard_rollout_step", "shipyard_alerts_firing",
                         "shipyard_feature_drift_p_value", "shipyard_model_swaps_total"}
                        <= names and 'source="realised"' in page):
                    return False
            return True
        until(complete, 90.0, lambda: f"no monitor results on /metrics:\n{scrape()}\n"
                                      f"{server.output()[-4000:]}", every_s=0.3)
        yield Live(server, scrape)
    finally:
        server.stop()
        registry.close()


def _traffic(base: str, x: np.ndarray, y: np.ndarray) -> None:
    """80 drifted rows in 8 requests, each labelled by feedback once the server has it."""
    rng = np.random.default_rng(0)
    picked = rng.choice(len(x), 80, replace=False)
    with httpx.Client(base_url=base, timeout=30) as client:
        for batch in np.array_split(picked, 8):
            rows = x[batch] * 1.6
            body: dict[str, Any] = {"instances": [dict(zip(FEATURES, r, strict=True))
                                                  for r in rows.tolist()]}
            answer = client.post(f"/v1/endpoints/{ENDPOINT}/predict", json=body)
            assert answer.status_code == 200, answer.text
            request_id = answer.json()["request_id"]
            labels = [int(v) for v in y[batch]]

            def labelled(rid: str = request_id, values: list[int] = labels) -> bool:
                sent = client.post(f"/v1/endpoints/{ENDPOINT}/feedback",
                                   json={"request_id": rid, "labels": values})
                return sent.status_code == 200 and sent.json()["accepted"] == len(values)
            until(labelled, 30.0, f"feedback for {request_id} never accepted", every_s=0.2)
