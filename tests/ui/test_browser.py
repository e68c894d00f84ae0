"""End to end, in headless Chromium (Playwright driving Debian's ``/usr/bin/chromium``)
against ``shipyard serve`` over the scenario (traffic, drift, labels, an alert firing, a canary
in progress): every page loads without a console error and without a request leaving
127.0.0.1, charts render with data, the overview's numbers equal the API's, Try it predicts and
sends feedback, and an admin action needs the admin key. Screenshots go to
``$SHIPYARD_SCREENSHOTS`` (default ``test-artifacts/screenshots``, which CI keeps).

Chromium and Playwright missing: a failure under CI=true (``scripts/ensure-tools.sh`` and the
dev extra install them), a skip elsewhere."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from serving.helpers import ROOT, ServerProcess
from ui.scenario import ADMIN_KEY, API_KEY, ENDPOINT, Scenario

CHROMIUM = os.environ.get("SHIPYARD_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("SHIPYARD_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))


def _missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install 'shipyard-ml[dev]')")
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing (Debian: apt-get install chromium; "
                 "scripts/ensure-tools.sh does it)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def server(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[ServerProcess]:
    """``shipyard serve`` over a copy of the scenario (its admin action changes the
    registry); the scheduled monitor off, so the stored windows stay as the tests read them."""
    root = tmp_path_factory.mktemp("e2e") / "scenario"
    shutil.copytree(scenario.root, root)
    doc = yaml.safe_load((root / "serve.yaml").read_text())
    doc["log_dir"] = str(root / "logs")
    doc["monitor"] = {**doc["monitor"], "enabled": False}
    (root / "serve.yaml").write_text(yaml.safe_dump(doc))
    proc = ServerProcess(["--config", str(root / "serve.yaml")], home=root / "home",
                         out=root / "server.out")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


class Browser:
    """One signed-in page that records console errors and blocks (and records) every
    request to anywhere but the server."""

    def __init__(self, driver: Any, base: str) -> None:
        self.browser = driver.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])
        self.context = self.browser.new_context(viewport={"width": 1360, "height": 900})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.base = base
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _only_local(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith("data:") or host == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def open(self, path: str, shot: str) -> Any:
        answer = self.page.goto(self.base + path)
        assert answer is not None
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
        return answer

    def close(self) -> None:
        self.browser.close()


@pytest.fixture(scope="module")
def browser(playwright: Any, server: ServerProcess) -> Iterator[Browser]:
    found = Browser(playwright, server.base)
    try:
        found.open("/ui/", "login")
        found.page.fill("#key", API_KEY)
        found.page.click("button[type=submit]")
        found.page.wait_for_url("**/ui/")
        yield found
    finally:
        found.close()


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} on /metrics")


def test_every_page_loads_clean_with_charts(browser: Browser, server: ServerProcess) -> None:
    record = httpx.get(f"{server.base}/ui/endpoints/{ENDPOINT}",
                       headers={"x-api-key": API_KEY}, timeout=30)
    assert record.status_code == 200
    pages = {"overview": "/ui/", "endpoint": f"/ui/endpoints/{ENDPOINT}",
             "feature": f"/ui/endpoints/{ENDPOINT}/features/income",
             "models": "/ui/models", "model": f"/ui/models/{ENDPOINT}",
             "rollouts": "/ui/rollouts", "rollout": f"/ui/rollouts/{ENDPOINT}",
             "try": f"/ui/endpoints/{ENDPOINT}/try"}
    for shot, path in pages.items():
        answer = browser.open(path, shot)
        assert answer.status == 200, (path, answer.status)
        charts = browser.page.locator("svg[role=img]")
        if shot in ("endpoint", "feature"):
            assert charts.count() >= (8 if shot == "endpoint" else 1), shot
            for i in range(charts.count()):
                chart = charts.nth(i)
                assert chart.get_attribute("aria-label")
                # drawn: the chart has marks and a size on screen
                assert chart.locator("path, rect, circle").count() > 0
                box = chart.bounding_box()
                assert box is not None and box["width"] > 50 and box["height"] > 30
    assert browser.errors == []
    assert browser.outside == []


LABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => el.labels.length === 0).map(el => el.name || el.id)"""


# WCAG 2 contrast of every element's own text against its effective background: the pairs
# under 4.5:1 (3:1 for large text), as "text colour on background ratio"
LOW_CONTRAST = """() => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = el => { for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3); }
    return [255, 255, 255]; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || !el.offsetParent) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgb(style.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 ||
      (parseFloat(style.fontSize) >= 18.66 && parseInt(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(el.textContent.trim().slice(0, 30) + ' ' +
      style.color + ' on ' + background(el) + ' ' + ratio.toFixed(2));
  }
  return bad; }"""


def test_text_has_sufficient_contrast(browser: Browser) -> None:
    for shot, path in (("contrast-overview", "/ui/"),
                       ("contrast-endpoint", f"/ui/endpoints/{ENDPOINT}"),
                       ("contrast-rollout", f"/ui/rollouts/{ENDPOINT}"),
                       ("contrast-action", f"/ui/actions/{ENDPOINT}/rollback")):
        browser.open(path, shot)
        assert browser.page.evaluate(LOW_CONTRAST) == [], path


def test_controls_are_labelled_and_keyboard_reachable(browser: Browser) -> None:
    for shot, path in (("keyboard-try", f"/ui/endpoints/{ENDPOINT}/try"),
                       ("keyboard-feature", f"/ui/endpoints/{ENDPOINT}/features/age"),
                       ("keyboard-model", f"/ui/models/{ENDPOINT}"),
                       ("keyboard-action", f"/ui/actions/{ENDPOINT}/rollback")):
        browser.open(path, shot)
        page = browser.page
        assert page.evaluate(LABELLED) == [], path
        page.keyboard.press("Tab")  # the first stop skips the navigation
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        # every control is reached by Tab, in order, and none traps the focus
        controls = page.locator("main a, main input:not([type=hidden]), main select, "
                                "main button, main summary").count()
        reached = set()
        for _ in range(controls + 8):
            page.keyboard.press("Tab")
            reached.add(page.evaluate("document.activeElement.outerHTML.slice(0, 80)"))
        assert len(reached) >= min(controls, 3), path
    assert browser.errors == [] and browser.outside == []


def test_overview_numbers_equal_the_apis(browser: Browser, server: ServerProcess) -> None:
    browser.open("/ui/", "overview-numbers")
    row = browser.page.locator(f'tr[data-endpoint="{ENDPOINT}"]')

    def value(name: str) -> float:
        return float(row.locator(f'[data-metric="{name}"]').get_attribute("data-value") or "nan")

    scrape = httpx.get(f"{server.base}/metrics", headers={"x-api-key": API_KEY},
                       timeout=30).text
    assert value("drift_share") == _metric(scrape, "shipyard_drift_share", endpoint=ENDPOINT)
    assert value("estimated") == pytest.approx(_metric(
        scrape, "shipyard_model_metric", endpoint=ENDPOINT, metric="accuracy",
        source="estimated"), rel=1e-12)
    assert value("alerts_firing") == _metric(scrape, "shipyard_alerts_firing",
                                             endpoint=ENDPOINT, rule="drift_share > 0.2") == 1
    deployments = httpx.get(f"{server.base}/v1/deployments/{ENDPOINT}", timeout=30,
                            headers={"x-api-key": ADMIN_KEY}).json()
    shown = row.locator("td").nth(1).inner_text()
    for share in deployments["traffic"]:
        assert f"{share['version']} {share['percent']:g}%" in shown
    assert browser.errors == [] and browser.outside == []


def test_try_it_predicts_and_sends_feedback(browser: Browser) -> None:
    browser.open(f"/ui/endpoints/{ENDPOINT}/try", "try-form")
    page = browser.page
    assert page.locator("#in-plan option").all_inner_texts() == ["basic", "pro", "team"]
    assert page.input_value("#in-age") != ""  # prefilled from the input example
    page.select_option("#in-plan", "pro")
    page.keyboard.press("Tab")
    page.click("text=Predict")
    page.wait_for_selector("#answer")
    label = page.locator('[data-metric="label"]').inner_text()
    probabilities = {c: float(page.locator(f'td[data-metric="{c}"]').get_attribute(
        "data-value") or "nan") for c in ("0", "1")}
    assert abs(sum(probabilities.values()) - 1.0) < 1e-6
    assert label == max(probabilities, key=probabilities.__getitem__)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "try-answer.png"), full_page=True)
    page.click("text=Send feedback")
    page.wait_for_selector('[data-metric="feedback"]')
    assert page.locator('[data-metric="feedback"]').get_attribute("data-value") == "1"
    page.screenshot(path=str(SHOTS / "try-feedback.png"), full_page=True)
    assert browser.errors == [] and browser.outside == []


def test_an_admin_action_needs_the_admin_key(browser: Browser, server: ServerProcess) -> None:
    browser.open(f"/ui/rollouts/{ENDPOINT}", "rollout-before")
    page = browser.page
    page.click("text=abort…")
    page.wait_for_selector("text=Confirm abort")
    page.check("#confirm")
    page.fill("#admin_key", API_KEY)  # a valid key, but not an admin key
    page.click("text=Confirm abort")
    assert page.locator("[role=alert]").inner_text().startswith("this action needs an admin")
    page.screenshot(path=str(SHOTS / "admin-refused.png"), full_page=True)
    status = httpx.get(f"{server.base}/v1/deployments/{ENDPOINT}", timeout=30,
                       headers={"x-api-key": ADMIN_KEY}).json()
    assert status["rollout"] is not None
    browser.open(f"/ui/actions/{ENDPOINT}/abort", "admin-confirm")
    page.check("#confirm")
    page.fill("#admin_key", ADMIN_KEY)
    page.click("text=Confirm abort")
    page.wait_for_url(f"**/ui/rollouts/{ENDPOINT}")
    page.screenshot(path=str(SHOTS / "rollout-aborted.png"), full_page=True)
    status = httpx.get(f"{server.base}/v1/deployments/{ENDPOINT}", timeout=30,
                       headers={"x-api-key": ADMIN_KEY}).json()
    assert status["rollout"] is None
    # console errors here would be the refused action's 403 answer, which Chromium logs
    assert [e for e in browser.errors if "403" not in e] == [] and browser.outside == []
