"""Admin actions from the dashboard, on ``shipyard ui``'s app (no model server) over a copy of
the scenario's registry: a confirmation page first; the change needs an admin key and the
confirmation, and is audited with the key's name as the admin API audits it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shipyard.errors import RegistryUnavailableError
from shipyard.registry import Registry
from shipyard.server.dashboard import dashboard_app
from shipyard.settings import Settings
from ui.pages import Cells
from ui.scenario import ADMIN_KEY, API_KEY, ENDPOINT, Scenario

VIEW = {"x-api-key": API_KEY}


@pytest.fixture
def home(scenario: Scenario, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(scenario.home, copy)
    return copy


@pytest.fixture
def client(scenario: Scenario, home: Path) -> Iterator[TestClient]:
    settings = Settings.from_env({"SHIPYARD_HOME": str(home)})
    app = dashboard_app(scenario.log_dir, settings, api_keys={"viewer": API_KEY},
                        admin_api_keys={"ops": ADMIN_KEY})
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def registry(home: Path) -> Registry:
    return Registry(settings=Settings.from_env({"SHIPYARD_HOME": str(home)}))


def test_standalone_dashboard_reads_the_registry_and_the_logs(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
    page = client.get("/ui/", headers=VIEW)
    assert page.status_code == 200, page.text
    row = Cells(page.text).rows[ENDPOINT]
    assert row["drift_share"] and "not served here" in page.text
    tryit = client.get(f"/ui/endpoints/{ENDPOINT}/try", headers=VIEW)
    assert tryit.status_code == 404 and "shipyard serve" in tryit.text


def test_abort_needs_an_admin_key_and_a_confirmation(client: TestClient, home: Path) -> None:
    confirm = client.get(f"/ui/actions/{ENDPOINT}/abort", headers=VIEW)
    assert confirm.status_code == 200, confirm.text
    assert 'name="admin_key" type="password"' in confirm.text
    assert "Confirm abort" in confirm.text
    path = f"/ui/actions/{ENDPOINT}/abort"
    form = {"reason": "bad canary", "confirm": "yes"}
    assert client.post(path, headers=VIEW, data=form).status_code == 401
    assert client.post(path, headers=VIEW, data={**form, "admin_key": "wrong"}
                       ).status_code == 401
    assert client.post(path, headers=VIEW, data={**form, "admin_key": API_KEY}
                       ).status_code == 403
    assert client.post(path, headers=VIEW, data={"admin_key": ADMIN_KEY}).status_code == 400
    assert client.post(path, data={**form, "admin_key": ADMIN_KEY}).status_code == 401
    with registry(home) as reg:
        assert reg.rollouts.active(ENDPOINT) is not None  # nothing changed so far
    done = client.post(path, headers=VIEW, data={**form, "admin_key": ADMIN_KEY},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/ui/rollouts/{ENDPOINT}"
    with registry(home) as reg:
        assert reg.rollouts.active(ENDPOINT) is None
        assert [r.state for r in reg.rollouts.history(ENDPOINT)] == ["aborted"]
        assert any(r.actor == "api:ops" for r in reg.audit(action="deployment.policy"))


def test_alias_move_is_confirmed_and_audited(client: TestClient, home: Path) -> None:
    review = client.get(f"/ui/models/{ENDPOINT}/alias", headers=VIEW,
                        params={"alias": "staging", "version": "2"})
    assert review.status_code == 200 and "Confirm alias move" in review.text
    form = {"alias": "staging", "version": "2", "confirm": "yes"}
    path = f"/ui/models/{ENDPOINT}/alias"
    assert client.post(path, headers=VIEW, data={**form, "admin_key": API_KEY}
                       ).status_code == 403
    moved = client.post(path, headers=VIEW, data={**form, "admin_key": ADMIN_KEY},
                        follow_redirects=False)
    assert moved.status_code == 303, moved.text
    with registry(home) as reg:
        assert reg.get_model(ENDPOINT).aliases["staging"] == 2
        (record,) = [r for r in reg.audit(model=ENDPOINT) if r.alias == "staging"]
        assert record.actor == "api:ops"


def test_rollout_page_shows_an_ab_tests_interval_and_a_shadows_agreement(
        client: TestClient, home: Path) -> None:
    from shipyard.routing.plans import ABPlan, ShadowPlan

    with registry(home) as reg:
        reg.rollouts.deploy("ab-shop", f"{ENDPOINT}/1", reason="test")
        ab = reg.rollouts.start_ab("ab-shop", f"{ENDPOINT}/1", f"{ENDPOINT}/2", ABPlan(),
                                   reason="test")
        reg.rollouts.record(ab.id, outcome="verdict", reason="B better", numbers={
            "verdict": {"verdict": "b_better", "difference": 0.031,
                        "interval": [0.012, 0.05], "p_value": 0.0042},
            "sample": {"a": 4100, "b": 4080}})
        reg.rollouts.deploy("shadow-shop", f"{ENDPOINT}/1", reason="test")
        shadow = reg.rollouts.start_shadow("shadow-shop", f"{ENDPOINT}/2", ShadowPlan(),
                                           reason="test")
        reg.rollouts.record(shadow.id, outcome="observe", reason="agreement", numbers={
            "comparison": {"agreement": 0.974, "interval": [0.96, 0.984]}})
    page = client.get("/ui/rollouts/ab-shop", headers=VIEW)
    assert page.status_code == 200, page.text
    shown = page.text.split("all numbers")[0]  # the picked-out numbers, before the rest
    for text in ("verdict.interval", "[0.012, 0.05]", "verdict.p_value", "0.0042",
                 "verdict.difference", "0.031", "&quot;b_better&quot;"):
        assert text in shown, text
    assert "Planned sample per variant" in page.text
    page = client.get("/ui/rollouts/shadow-shop", headers=VIEW)
    shown = page.text.split("all numbers")[0]
    assert "comparison.agreement" in shown and "0.974" in shown
    assert "comparison.interval" in shown and "[0.96, 0.984]" in shown


def test_an_unreachable_registry_leaves_the_overview_standing(scenario: Scenario,
                                                              home: Path) -> None:
    settings = Settings.from_env({"SHIPYARD_HOME": str(home)})
    app = dashboard_app(scenario.log_dir, settings,
                        registry_url="postgresql+psycopg://u:p@127.0.0.1:1/x",
                        registry_keys=False)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        page = test_client.get("/ui/")
        assert page.status_code == 200, page.text
        assert "the registry could not be read: cannot reach the registry" in page.text
        assert "u:p@" not in page.text  # the password is not shown
        assert Cells(page.text).rows[ENDPOINT]["drift_share"] != ""  # from the monitor
        models = test_client.get("/ui/models")
        assert models.status_code == 503 and "cannot reach the registry" in models.text
    # reading the registry's API keys too: not knowing them, it does not start
    guarded = dashboard_app(scenario.log_dir, settings,
                            registry_url="postgresql+psycopg://u:p@127.0.0.1:1/x")
    with pytest.raises(RegistryUnavailableError, match="cannot reach the registry"), \
            TestClient(guarded, base_url="http://127.0.0.1"):
        pass
