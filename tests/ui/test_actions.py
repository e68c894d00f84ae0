"""Admin actions from the dashboard, on ``shipyard ui``'s app (no model server) over a copy of
the scenario's registry: a confirmation page first; the change needs an admin key and the
confirmation, and is audited with the key's name as the admin API audits it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

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
