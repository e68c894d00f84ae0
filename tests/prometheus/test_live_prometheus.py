"""The rules and dashboards of docs/ against the real tools: promtool checks and unit-tests
the rules; every metric they name is in a real scrape of a live server that has had
traffic and a monitor run; a real Prometheus scrapes that server, evaluates the rules and
answers every dashboard query."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from prometheus.conftest import DASHBOARDS, RULE_TESTS, RULES, Live, samples, tool
from rollouts.harness import until
from serving.helpers import free_port

# a metric name in PromQL; recorded series (level:metric:operation) are not scraped
METRIC = re.compile(r"(?<![\w:])shipyard_[a-z0-9_]+(?![\w:])")
# what Grafana substitutes before a query reaches Prometheus
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$endpoint": ".*"}


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    for path in DASHBOARDS:
        walk(json.loads(path.read_text()))
    return found


def test_docs_hold_both_dashboards_and_the_rules() -> None:
    assert [p.name for p in DASHBOARDS] == ["model-quality.json", "service-health.json"]
    assert len(dashboard_expressions()) > 20 and len(rule_expressions()) > 10


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    promtool = tool("promtool")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # every alert of the rules has a case that fires it and one where it is resolved
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == alerts


def test_every_metric_the_dashboards_and_rules_name_is_in_a_real_scrape(live: Live) -> None:
    named = {m for expr in [*rule_expressions(), *dashboard_expressions()]
             for m in METRIC.findall(expr)}
    assert len(named) > 20
    scraped = {name for name, _ in samples(live.scrape())}
    assert sorted(named - scraped) == []


def test_every_worker_answers_the_same_monitor_values(live: Live) -> None:
    pages = [live.scrape() for _ in range(6)]  # new connections: either worker answers
    drift = [sorted(rest for name, rest in samples(page) if name == "shipyard_drift_share")
             for page in pages]
    assert drift[0] and all(d == drift[0] for d in drift), drift


@contextmanager
def prometheus(tmp: Path, target: str) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping ``target`` every second with the rules
    loaded; its API base URL."""
    binary = tool("prometheus")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "shipyard", "static_configs": [{"targets": [target]}]}],
    }))
    out = (tmp / "prometheus.out").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError((tmp / "prometheus.out").read_text())
            try:
                return httpx.get(f"{base}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        until(ready, 60.0, lambda: (tmp / "prometheus.out").read_text(), every_s=0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()


def query(base: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def test_a_real_prometheus_scrapes_the_server_and_answers_every_query(
        live: Live, tmp_path: Path) -> None:
    with prometheus(tmp_path, live.server.base.removeprefix("http://")) as base:
        drift = until(lambda: query(base, "shipyard_drift_share"), 60.0,
                      "Prometheus never had shipyard_drift_share", every_s=0.5)
        scraped = [(name, rest) for name, rest in samples(live.scrape())
                   if name == "shipyard_drift_share"]
        assert len(drift) == len(scraped) == 1
        series = drift[0]
        assert series["metric"]["endpoint"] == "iris" and series["metric"]["job"] == "shipyard"
        assert float(series["value"][1]) == float(scraped[0][1].split()[-1])
        weights = until(lambda: query(base, 'shipyard_traffic_weight{endpoint="iris"}'), 30.0,
                        "no traffic weights")
        assert sorted((w["metric"]["version"], float(w["value"][1])) for w in weights) == \
            [("1", 0.7), ("2", 0.3)]
        step = query(base, "shipyard_rollout_step")
        assert [(s["metric"]["kind"], float(s["value"][1])) for s in step] == [("canary", 0)]
        # every dashboard query is valid PromQL that Prometheus evaluates
        for expr in dashboard_expressions():
            if not expr.startswith("label_values("):
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                query(base, expr)
        # the rules loaded and evaluate without errors
        def evaluated() -> list[dict[str, Any]]:
            groups = httpx.get(f"{base}/api/v1/rules", timeout=10).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            done = all(not r.get("lastEvaluation", "0001").startswith("0001") for r in rules)
            return rules if rules and done else []
        rules = until(evaluated, 30.0, "the rules were never evaluated")
        assert len(rules) == len(rule_expressions()), rules  # every rule in the file loaded
        assert all(r["health"] == "ok" for r in rules), rules
