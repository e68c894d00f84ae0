"""``shipyard deploy``, ``shipyard rollout ...`` and ``shipyard rollback`` on a SQLite registry
holding two versions of a real packaged model (the session's ``customer_model``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.cli.main import app, run
from shipyard.monitoring.experiments import sample_size
from shipyard.registry import Registry

runner = CliRunner()
V1, V2 = "customers/1", "customers/2"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        customer_model: tuple[Any, shipyard.Package]) -> Iterator[str]:
    """A registry (given by --registry) with two versions of the customers model."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for var in ("SHIPYARD_REGISTRY_URL", "SHIPYARD_ARTIFACTS", "SHIPYARD_ACTOR"):
        monkeypatch.delenv(var, raising=False)
    address = f"sqlite:///{tmp_path / 'rollouts.db'}"
    with Registry(address) as reg:
        reg.register(customer_model[1])
        reg.register(customer_model[1])
    yield address


def invoke(url: str, *args: str) -> str:
    """The command's output, its whitespace (rich's wrapping) collapsed to single spaces."""
    result = runner.invoke(app, [*args, "--registry", url])
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return " ".join(result.output.split())


def as_json(url: str, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--json", "--registry", url])
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return json.loads(result.output)


def refused(url: str, *args: str) -> str:
    """The one-line error ``shipyard`` prints for a refused command (exit 1)."""
    result = runner.invoke(app, [*args, "--registry", url])
    assert result.exit_code != 0, args
    assert isinstance(result.exception, shipyard.ShipyardError), (args, result.output)
    return str(result.exception)


def shares(status: dict[str, Any]) -> list[tuple[str, str, float]]:
    return [(t["version"], t["variant"], t["percent"]) for t in status["traffic"]]


def test_deploy_canary_status_promote_history(url: str) -> None:
    assert V1 in invoke(url, "deploy", "shop", "models:/customers/1", "--reason", "first")
    shown = invoke(url, "rollout", "canary", "shop", "--to", "models:/customers/2",
                   "--steps", "10,50,100", "--interval", "30s", "--metric", "accuracy",
                   "--min-requests", "50", "--failures", "3", "--alias", "prod")
    # the plan is shown as started
    assert "canary" in shown and V2 in shown and "interval_s" in shown and "10" in shown

    status = as_json(url, "rollout", "status", "shop")
    assert status["policy"]["kind"] == "weighted"
    assert shares(status) == [(V1, "stable", 90.0), (V2, "canary", 10.0)]
    rollout = status["rollout"]
    assert (rollout["kind"], rollout["state"], rollout["stable"], rollout["candidate"]) == (
        "canary", "running", V1, V2)
    assert rollout["step"] == 0 and rollout["percent"] == 10.0
    assert rollout["plan"]["interval_s"] == 30.0 and rollout["plan"]["failures"] == 3
    table = invoke(url, "rollout", "status", "shop")
    assert "10%" in table and "90%" in table and "step 1 of 3" in table

    assert "abort it first" in refused(url, "rollout", "canary", "shop", "--to",
                                   "models:/customers/1")
    assert "rollout" in refused(url, "deploy", "shop", "models:/customers/1")

    promoted = as_json(url, "rollout", "promote", "shop", "--reason", "looks good")
    assert promoted["policy"] == {**promoted["policy"], "kind": "single", "version": V2}
    assert promoted["rollout"] is None

    history = as_json(url, "rollout", "history", "shop")
    (done,) = history["rollouts"]
    assert done["state"] == "promoted" and done["reason"] == "looks good"
    assert "promote" in [d["outcome"] for d in done["decisions"]]
    assert [r["revision"] for r in history["revisions"]] == [3, 2, 1]
    assert "promoted" in invoke(url, "rollout", "history", "shop")
    with Registry(url) as reg:
        actions = [r.action for r in reg.audit()]
        assert reg.get_version("customers@prod").version == 2  # the plan's alias moved
    assert "deployment.policy" in actions and "alias.set" in actions
    assert any(a.startswith("rollout.") for a in actions), actions


def test_abort_and_rollback_go_back_to_stable(url: str) -> None:
    invoke(url, "deploy", "shop", "models:/customers/1")
    invoke(url, "rollout", "canary", "shop", "--to", "models:/customers/2")
    aborted = as_json(url, "rollout", "abort", "shop", "--reason", "errors in the logs")
    assert shares(aborted) == [(V1, "stable", 100.0)] and aborted["rollout"] is None
    (done,) = as_json(url, "rollout", "history", "shop")["rollouts"]
    assert (done["state"], done["reason"]) == ("aborted", "errors in the logs")

    # a rollback while a rollout runs aborts it
    invoke(url, "rollout", "canary", "shop", "--to", "models:/customers/2")
    assert shares(as_json(url, "rollback", "shop")) == [(V1, "stable", 100.0)]

    # with none running: back to the version served before
    invoke(url, "deploy", "shop", "models:/customers/2")
    assert "rolled back" in invoke(url, "rollback", "shop")
    assert shares(as_json(url, "rollout", "status", "shop")) == [(V1, "stable", 100.0)]


def test_ab_prints_its_planned_sample_and_promotes_the_winner(url: str) -> None:
    invoke(url, "deploy", "shop", "models:/customers/1")
    shown = invoke(url, "rollout", "ab", "shop", "--a", "models:/customers/1",
                   "--b", "models:/customers/2", "--split", "50", "--key", "header:X-User-Id",
                   "--metric", "accuracy", "--mde", "0.05", "--baseline", "0.8")
    planned = sample_size("proportion", 0.8, 0.05, 0.05, 0.8, ratio=1.0, sequential=True)
    assert f"{planned.n_a:,} requests for a" in shown and "mSPRT" in shown
    status = as_json(url, "rollout", "status", "shop")
    assert shares(status) == [(V1, "a", 50.0), (V2, "b", 50.0)]
    assert status["policy"]["key"] == "header:X-User-Id"
    assert status["rollout"]["sample_plan"]["n_a"] == planned.n_a

    promoted = as_json(url, "rollout", "promote", "shop", "--winner", "b")
    assert shares(promoted) == [(V2, "stable", 100.0)]

    fixed = sample_size("proportion", 0.5, 0.02, 0.05, 0.8, ratio=1.0)
    shown = invoke(url, "rollout", "ab", "shop", "--a", "models:/customers/2",
                   "--b", "models:/customers/1", "--fixed-horizon", "--mde", "0.02")
    assert f"{fixed.n_a:,} requests for a" in shown and "fixed horizon" in shown
    invoke(url, "rollout", "abort", "shop")


def test_shadow_and_bluegreen(url: str) -> None:
    invoke(url, "deploy", "shop", "models:/customers/1")
    invoke(url, "rollout", "shadow", "shop", "--candidate", "models:/customers/2",
           "--percent", "25", "--interval", "1m")
    status = as_json(url, "rollout", "status", "shop")
    assert status["traffic"] == [
        {"version": V1, "variant": "primary", "percent": 100.0},
        {"version": V2, "variant": "shadow", "percent": 0.0, "copied_percent": 25.0}]
    invoke(url, "rollout", "abort", "shop")

    invoke(url, "rollout", "bluegreen", "shop", "--to", "models:/customers/2")
    assert shares(as_json(url, "rollout", "status", "shop")) == [
        (V1, "blue", 100.0), (V2, "green", 0.0)]
    assert shares(as_json(url, "rollout", "switch", "shop")) == [
        (V1, "blue", 0.0), (V2, "green", 100.0)]
    assert shares(as_json(url, "rollout", "promote", "shop")) == [(V2, "stable", 100.0)]


def test_bad_input_is_one_clear_error(url: str) -> None:
    invoke(url, "deploy", "shop", "models:/customers/1")
    bad = runner.invoke(app, ["rollout", "canary", "shop", "--to", "models:/customers/2",
                              "--interval", "10 minutes", "--registry", url])
    assert bad.exit_code == 2 and "--interval" in bad.output and "30s" in bad.output
    bad = runner.invoke(app, ["rollout", "canary", "shop", "--to", "models:/customers/2",
                              "--steps", "5,lots", "--registry", url])
    assert bad.exit_code == 2 and "--steps" in bad.output
    assert "rise" in refused(url, "rollout", "canary", "shop", "--to", "models:/customers/2",
                             "--steps", "50,20,100")
    assert "no version 9" in refused(url, "deploy", "shop", "models:/customers/9")
    assert "no version 9" in refused(url, "rollout", "canary", "shop", "--to",
                                    "models:/customers/9")
    assert "nowhere" in refused(url, "rollout", "status", "nowhere")
    assert "metric" in refused(url, "rollout", "ab", "shop", "--a", "models:/customers/1",
                               "--b", "models:/customers/2", "--metric", "speed")
    assert "needs sd" in refused(url, "rollout", "ab", "shop", "--a", "models:/customers/1",
                                 "--b", "models:/customers/2", "--metric", "mae")
    # nothing changed on the way
    assert shares(as_json(url, "rollout", "status", "shop")) == [(V1, "stable", 100.0)]


def test_the_entry_point_prints_one_line_and_exits_1(
        url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["shipyard", "deploy", "shop", "models:/customers/9",
                                      "--registry", url])
    with pytest.raises(SystemExit) as exited:
        run()
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 1
    assert err.startswith("error:") and "no version 9" in err and "Traceback" not in err
    assert len(err.splitlines()) <= 2, err  # one message (rich may wrap a long line)
