"""A shipyard home with everything the dashboard shows, made for real: two registered
versions of a classifier with numeric and categorical inputs, an endpoint serving
``models:/shop@production`` with a canary to v2 in progress, drifted traffic answered by the
server, feedback labels, server errors in the log, and monitor windows with an alert firing.
Built in process (the app over ``TestClient``); the e2e tests then serve the same home."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import shipyard
from shipyard.registry import Registry
from shipyard.routing.plans import CanaryPlan
from shipyard.settings import Settings

ENDPOINT = "shop"
API_KEY = "viewer-secret"
ADMIN_KEY = "admin-secret"
RULES = ["drift_share > 0.2", "accuracy < 0.01"]
# windows of 3 s every second: the three phases of traffic, a second apart, show as a
# series of windows that differ (normal, then drifting)
MONITOR = {"every": 1.0, "window": 3.0, "min_rows": 30, "rules": RULES}


@dataclass(frozen=True)
class Scenario:
    root: Path
    home: Path
    log_dir: Path
    config: Path  # serve.yaml

    @property
    def settings(self) -> Settings:
        return Settings.from_env({"SHIPYARD_HOME": str(self.home)})


def shop_data(rows: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"age": rng.normal(40 + shift * 15, 10, rows).round(1),
                      "income": rng.normal(50 + shift * 20, 12, rows).round(2),
                      "visits": rng.poisson(3, rows).astype(np.int64),
                      "plan": rng.choice(["basic", "pro", "team"], rows)})
    score = 0.05 * (x["age"] - 40) + 0.04 * (x["income"] - 50) + (x["plan"] == "pro") * 0.8
    y = (score + rng.normal(0, 0.5, rows) > 0.3).astype(np.int64).to_numpy()
    return x, y


def _model(c: float) -> Pipeline:
    prep = ColumnTransformer([("num", StandardScaler(), ["age", "income", "visits"]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])
    return Pipeline([("prep", prep), ("lr", LogisticRegression(C=c, max_iter=500))])


def build(root: Path) -> Scenario:
    from starlette.testclient import TestClient

    from shipyard.server.app import create_app
    from shipyard.service.config import MonitorConfig, ServeConfig
    from shipyard.service.dataplane import DataPlane
    from shipyard.service.monitor import Monitor
    from shipyard.stores.error_records import ErrorRecord

    home, log_dir = root / "home", root / "logs"
    home.mkdir(parents=True)
    scenario = Scenario(root, home, log_dir, root / "serve.yaml")
    settings = scenario.settings
    x, y = shop_data(600, 0)
    registry = Registry(settings=settings, actor="tester", auto_upgrade=True)
    try:
        for version, c in ((1, 1.0), (2, 0.5)):
            registry.register(shipyard.package(_model(c).fit(x, y), x, target=y, name=ENDPOINT,
                                               metrics={"accuracy": 0.9 - 0.01 * version}),
                              alias="production" if version == 1 else None)
        registry.rollouts.deploy(ENDPOINT, f"{ENDPOINT}/1", reason="first version")
        registry.rollouts.start_canary(ENDPOINT, f"{ENDPOINT}/2",
                                       CanaryPlan(steps=(30.0, 100.0), interval_s=3600.0),
                                       reason="dashboard test")
    finally:
        registry.close()
    doc = {"poll_interval_s": 0.3, "flush_interval_s": 0.2, "log_dir": str(log_dir),
           "api_keys": {"viewer": API_KEY}, "admin_api_keys": {"ops": ADMIN_KEY},
           "endpoints": [{"name": ENDPOINT, "model": f"models:/{ENDPOINT}@production",
                          "trust": True}],
           "monitor": MONITOR}
    scenario.config.write_text(yaml.safe_dump(doc))
    config = ServeConfig.from_dict({**doc, "monitor": {**MONITOR, "enabled": False}})
    plane = DataPlane(config, settings=settings)
    started = time.time()
    headers = {"x-api-key": API_KEY}
    with TestClient(create_app(plane), base_url="http://127.0.0.1") as client:
        _wait_for_canary(plane)
        for seed, shift in ((1, 0.0), (2, 1.0), (3, 1.0)):
            if seed > 1:
                time.sleep(1.0)
            rows, labels = shop_data(60, seed, shift)
            for start in range(0, 60, 10):
                batch = rows.iloc[start:start + 10]
                answer = client.post(f"/v1/endpoints/{ENDPOINT}/predict", headers={
                    **headers, "x-request-key": f"user-{seed}-{start}"},
                    json={"instances": batch.to_dict(orient="records")})
                assert answer.status_code == 200, answer.text
                body = answer.json()
                sent = client.post(f"/v1/endpoints/{ENDPOINT}/feedback", headers=headers,
                                   json={"request_id": body["request_id"],
                                         "labels": [int(v) for v in labels[start:start + 10]]})
                assert sent.status_code == 200, sent.text
        for i in range(3):  # server errors, as a failing model version leaves them
            plane.log.append(ErrorRecord(time.time(), ENDPOINT, ENDPOINT, 1, "stable", 1,
                                         f"failed-{i}", 503, 5.0, None))
    # windows end on whole seconds: the traffic's first window is complete a second later
    time.sleep(1.5)
    monitor = MonitorConfig(every=1.0, window=3.0, min_rows=30, rules=tuple(RULES))
    Monitor(ENDPOINT, log_dir, monitor, model_source=f"models:/{ENDPOINT}@production",
            settings=settings).run(since=started - 1.0)
    return scenario


def _wait_for_canary(plane: Any) -> None:
    """The policy watcher has put the canary's split in place."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        table = plane.endpoints[ENDPOINT].table
        if table is not None and len(table.policy.versions) == 2:
            return
        time.sleep(0.1)
    raise AssertionError("the canary's split never reached the server")
