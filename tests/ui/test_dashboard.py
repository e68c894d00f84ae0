"""The dashboard over a served scenario (``scenario.py``), through Starlette's TestClient:
each figure equals the API's, pages draw their charts, Try it predicts and sends feedback,
and only a valid key sees it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from shipyard.server.app import create_app
from shipyard.service.config import ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.service.monitor_history import MonitorHistory
from shipyard.service.monitor_metrics import newest_analysed
from shipyard.ui.endpoint_page import label
from ui.pages import Cells
from ui.scenario import ADMIN_KEY, API_KEY, ENDPOINT, Scenario

VIEW = {"x-api-key": API_KEY}


@pytest.fixture(scope="module")
def client(scenario: Scenario) -> Iterator[TestClient]:
    config = ServeConfig.from_file(scenario.config)
    config = ServeConfig.from_dict({**config.to_dict(), "monitor": None})
    plane = DataPlane(config, settings=scenario.settings)
    with TestClient(create_app(plane), base_url="http://127.0.0.1") as test_client:
        yield test_client


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} on /metrics")


def newest(scenario: Scenario) -> dict[str, Any]:
    found = newest_analysed(MonitorHistory(scenario.log_dir, ENDPOINT).recent())
    assert found is not None
    return found


def test_overview_figures_equal_the_apis(client: TestClient, scenario: Scenario) -> None:
    page = client.get("/ui/", headers=VIEW)
    assert page.status_code == 200, page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    row = Cells(page.text).rows[ENDPOINT]
    scrape = client.get("/metrics", headers=VIEW).text
    assert float(row["drift_share"]) == metric(scrape, "shipyard_drift_share",
                                               endpoint=ENDPOINT)
    assert float(row["estimated"]) == pytest.approx(metric(
        scrape, "shipyard_model_metric", endpoint=ENDPOINT, metric="accuracy",
        source="estimated"), rel=1e-12)
    firing = [r for r in ("drift_share > 0.2", "accuracy < 0.01")
              if metric(scrape, "shipyard_alerts_firing", endpoint=ENDPOINT, rule=r) == 1.0]
    assert float(row["alerts_firing"]) == len(firing) == 1
    record = newest(scenario)
    window = record["window"]
    assert float(row["p99_latency_ms"]) == record["metrics"]["p99_latency_ms"]
    assert float(row["p50_latency_ms"]) == record["metrics"]["p50_latency_ms"]
    assert float(row["realised"]) == record["performance"]["realised"]["accuracy"]
    assert float(row["request_rate"]) == pytest.approx(
        record["requests"] / (window["end_ts"] - window["start_ts"]))
    # three 503s were logged in the window, beside its requests
    assert float(row["error_rate"]) == pytest.approx(3 / (record["requests"] + 3))
    deployments = client.get("/v1/deployments", headers={"x-api-key": ADMIN_KEY}).json()
    shares = {t["version"]: t["percent"] for t in deployments["deployments"][0]["traffic"]}
    assert shares == {f"{ENDPOINT}/1": 70.0, f"{ENDPOINT}/2": 30.0}
    for version, percent in shares.items():
        assert f"{version} {percent:g}%" in page.text
    assert "canary to shop/2 step 1 of 2" in page.text
    assert ">ready<" in page.text


def test_a_page_needs_a_valid_key(client: TestClient) -> None:
    client.cookies.clear()
    for headers in ({}, {"x-api-key": "wrong"}):
        sent = client.get("/ui/", headers=headers, follow_redirects=False)
        assert (sent.status_code, sent.headers["location"]) == (303, "/ui/login")
        assert client.get(f"/ui/endpoints/{ENDPOINT}", headers=headers).url.path == "/ui/login"
    refused = client.post("/ui/login", data={"key": "wrong"}, follow_redirects=False)
    assert refused.status_code == 401
    signed = client.post("/ui/login", data={"key": API_KEY}, follow_redirects=False)
    assert signed.status_code == 303
    assert "httponly" in signed.headers["set-cookie"].lower()
    token = client.cookies.get("shipyard_ui_key")
    assert token and API_KEY not in token  # a token for the key, never the key itself
    assert client.get("/ui/").status_code == 200  # the cookie opens it
    prefix, expires, mac, name = token.split(".", 3)
    assert prefix == "shptok"
    forged = f"shptok.{expires}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}.{name}"
    later = f"shptok.{int(expires) + 1}.{mac}.{name}"  # a longer life is not its to give
    for bad in (forged, later, API_KEY):
        client.cookies.clear()
        client.cookies.set("shipyard_ui_key", bad, path="/ui")
        assert client.get("/ui/").url.path == "/ui/login", bad
    client.cookies.clear()


def test_endpoint_page_draws_every_chart(client: TestClient, scenario: Scenario) -> None:
    page = client.get(f"/ui/endpoints/{ENDPOINT}", headers=VIEW)
    assert page.status_code == 200, page.text
    cells = Cells(page.text)
    labels = [s.get("aria-label", "") for s in cells.svgs]
    assert all(s.get("role") == "img" for s in cells.svgs)
    for title in ("Requests per second per version", "Server errors per version",
                  "Latency percentiles per version", "Latency of all requests",
                  "Drift per feature", "Prediction and target drift", "accuracy: realised",
                  "Alert events"):
        assert any(label.startswith(title) for label in labels), (title, labels)
    assert re.search(r'<rect class="hit"', page.text)  # a drifted cell is marked
    assert "drift_share &gt; 0.2 fires" in page.text
    # the errors chart counted the three 503s of v1 in the newest window
    errors = next(label for label in labels if label.startswith("Server errors"))
    assert "v1: last 3" in errors
    # per version, the requests of the newest analysed window add up to the monitor's count
    record = newest(scenario)
    window = record["window"]
    at = label(window)
    span = window["end_ts"] - window["start_ts"]
    per_version = {v: float(cells.values[f"Requests per second per version/v{v}@{at}"][0])
                   for v in (1, 2)}
    assert sum(per_version.values()) * span == pytest.approx(record["requests"])
    assert all(rate > 0 for rate in per_version.values())  # the canary took some
    p99 = float(cells.values[f"Latency of all requests (ms, as monitored)/p99@{at}"][0])
    assert p99 == record["metrics"]["p99_latency_ms"]


def test_feature_page_shows_the_test_of_a_window(client: TestClient,
                                                 scenario: Scenario) -> None:
    record = newest(scenario)
    window = record["window"]
    drifted = sorted(n for n, c in record["drift"]["columns"].items() if c["drifted"])
    assert drifted
    page = client.get(f"/ui/endpoints/{ENDPOINT}/features/{drifted[0]}", headers=VIEW,
                      params={"since": repr(window["start_ts"]),
                              "until": repr(window["end_ts"])})
    assert page.status_code == 200, page.text
    cells = Cells(page.text)
    stored = record["drift"]["columns"][drifted[0]]
    assert float(cells.values["effect_size"][0]) == pytest.approx(stored["effect_size"])
    assert float(cells.values["p_value"][0]) == pytest.approx(stored["p_value"])
    assert cells.values["drifted"] == ["1"]
    assert any("reference (grey) and current (blue)" in s.get("aria-label", "")
               for s in cells.svgs)


def test_models_and_rollouts_pages(client: TestClient) -> None:
    models = client.get("/ui/models", headers=VIEW)
    assert models.status_code == 200 and f'href="/ui/models/{ENDPOINT}"' in models.text
    model = client.get(f"/ui/models/{ENDPOINT}", headers=VIEW)
    assert model.status_code == 200, model.text
    for text in ("Signature inputs", "plan", "basic, pro, team", "Audit trail", "Lineage",
                 "@production"):
        assert text in model.text
    rollouts = client.get(f"/ui/rollouts/{ENDPOINT}", headers=VIEW)
    assert rollouts.status_code == 200, rollouts.text
    assert "Traffic split" in rollouts.text and "canary" in rollouts.text
    assert f'href="/ui/actions/{ENDPOINT}/abort"' in rollouts.text


def test_try_it_predicts_and_sends_feedback(client: TestClient) -> None:
    form = client.get(f"/ui/endpoints/{ENDPOINT}/try", headers=VIEW)
    assert form.status_code == 200, form.text
    assert re.search(r'<select id="in-plan" name="plan">.*basic.*pro.*team', form.text)
    values = dict(re.findall(r'name="(age|income|visits)" type="number"[^>]*value="([^"]*)"',
                             form.text))
    assert set(values) == {"age", "income", "visits"}  # prefilled from the input example
    answer = client.post(f"/ui/endpoints/{ENDPOINT}/try", headers=VIEW,
                         data={**values, "plan": "pro"})
    assert answer.status_code == 200, answer.text
    cells = Cells(answer.text)
    label = cells.values["label"][0]
    probabilities = {k: float(cells.values[k][0]) for k in ("0", "1")}
    assert math.isclose(sum(probabilities.values()), 1.0, rel_tol=1e-6)
    assert label == max(probabilities, key=probabilities.__getitem__)
    request_id = cells.values["request_id"][0]
    sent = client.post(f"/ui/endpoints/{ENDPOINT}/feedback", headers=VIEW,
                       data={"request_id": request_id, "label": label})
    assert sent.status_code == 200, sent.text
    assert Cells(sent.text).values["feedback"] == ["1"]


def test_try_it_refuses_without_a_key(client: TestClient) -> None:
    client.cookies.clear()
    assert client.post(f"/ui/endpoints/{ENDPOINT}/try", data={"age": "1"}).status_code == 401


def test_an_endpoint_without_a_monitored_window_says_how_to_get_one() -> None:
    from shipyard.ui.overview import EndpointRow, render_overview

    def row(name: str, window_end: str | None) -> EndpointRow:
        return EndpointRow(
            name=name, health="ready", traffic=[], window_end=window_end, requests=None,
            request_rate=None, errors=None, error_rate=None, p50_ms=None, p99_ms=None,
            drift_share=None, dataset_drift=None, metric=None, realised=None, estimated=None,
            rules=[], firing=[], rollout=None)

    html = render_overview([row("fresh", None), row("watched", "2026-12-06T10:00:00Z")],
                           served=True)
    hint = html.split('data-metric="unmonitored"')[1].split("</p>")[0]
    assert "fresh" in hint and "watched" not in hint and "shipyard monitor run" in hint
    html = render_overview([row("watched", "2026-12-06T10:00:00Z")], served=True)
    assert 'data-metric="unmonitored"' not in html
