"""Offline evaluations in the registry (issue 18), on both backends: an evaluation is keyed by
the evaluated package's content, so one made on a package directory before it is registered
shows on every version of those bytes (under any name) and on no other; lineage shows it; a
canary, an A/B test, a blue-green rollout or an alias move that requires a passed evaluation
refuses a version without one (saying why) and goes on with an override that is audited."""

from __future__ import annotations

import re
from typing import Any

import pytest

from registry.helpers import MODEL, Packages
from shipyard.errors import NotFoundError, RegistryError
from shipyard.packaging import Manifest
from shipyard.packaging.manifest import content_fingerprint
from shipyard.registry import Registry
from shipyard.registry.evaluations import EvaluationRequiredError
from shipyard.routing.plans import CanaryPlan, ShadowPlan

GATE_PASSED = [{"rule": "accuracy >= 0.9", "passed": True, "value": 0.95}]
GATE_FAILED = [{"rule": "accuracy >= 0.9", "passed": False, "value": 0.7},
               {"rule": "size_mb <= 50", "passed": True, "value": 0.01}]


def record(reg: Registry, fingerprint: str, passed: bool | None, **extra: Any) -> int:
    gate = [] if passed is None else GATE_PASSED if passed else GATE_FAILED
    return reg.evaluations.record(
        fingerprint, source="pkg/dir", against=None,
        data={"file": "holdout.parquet", "sha256": "ab" * 32, "rows": 75, "target": "y"},
        passed=passed, gate=gate, summary={"headline": "accuracy", "value": 0.95},
        **extra).id


def test_an_evaluation_follows_the_package_bytes(reg: Registry, pkgs: Packages) -> None:
    before = content_fingerprint(Manifest.read(pkgs.base_dir).to_dict())
    first = record(reg, before, True)  # evaluated in CI before it is registered
    v1 = reg.register(pkgs.base_dir)
    v2 = reg.register(pkgs.compatible)
    again = reg.register(pkgs.base_dir, name="iris-copy")  # the same bytes, another name
    assert content_fingerprint(v1.manifest) == before == content_fingerprint(again.manifest)
    assert [e.id for e in reg.evaluations.of_version(v1.uri)] == [first]
    assert [e.id for e in reg.evaluations.of_version(again.uri)] == [first]
    assert reg.evaluations.of_version(v2.uri) == []  # other bytes inherit nothing
    later = record(reg, before, False, model=MODEL, version=1)
    found = reg.lineage(v1.uri).to_dict()["evaluations"]
    assert [(e["id"], e["verdict"]) for e in found] == [(later, "failed"), (first, "passed")]
    assert found[0]["failed_rules"] == ["accuracy >= 0.9"]
    assert found[0]["data_sha256"] == "ab" * 32 and found[0]["rows"] == 75
    assert reg.lineage(v2.uri).to_dict()["evaluations"] == []
    audits = [(a.model, a.version, a.after["verdict"]) for a in reg.audit(
        action="evaluation.record")]
    assert audits == [(None, None, "passed"), (MODEL, 1, "failed")]
    with pytest.raises(Exception, match="64 hex digits"):
        record(reg, "not-a-fingerprint", True)


def test_a_verdict_must_be_the_gates(reg: Registry) -> None:
    """A record cannot say "passed" over a failed rule or over no rule at all: it would
    satisfy --require-evaluation without the evaluation having passed anything."""
    data = {"sha256": "ab" * 32, "rows": 1, "target": "y"}
    for passed, gate, words in ((True, GATE_FAILED, "contradicts the gate's rules (1 failed)"),
                                (True, [], "without gate rules has no verdict"),
                                (False, GATE_PASSED, "contradicts"),
                                (None, GATE_PASSED, "has a verdict"),
                                (True, [{"rule": "accuracy >= 0.9"}], "needs 'passed'")):
        with pytest.raises(RegistryError, match=re.escape(words)):
            reg.evaluations.record("cd" * 32, source="x", against=None, data=data,
                                   passed=passed, gate=gate, summary={})
    assert reg.evaluations.of_fingerprint("cd" * 32) == []


@pytest.fixture
def deployed(reg: Registry, pkgs: Packages) -> Registry:
    reg.register(pkgs.base, alias="production")
    reg.register(pkgs.compatible)
    reg.rollouts.deploy("fraud", f"models:/{MODEL}/1", reason="launch")
    return reg


def test_a_required_evaluation_guards_rollouts_and_aliases(deployed: Registry) -> None:
    reg = deployed
    v2 = reg.get_version(f"{MODEL}/2")
    fingerprint = content_fingerprint(v2.manifest)
    canary = CanaryPlan()
    with pytest.raises(EvaluationRequiredError, match="has no evaluation with a gate"):
        reg.rollouts.start_canary("fraud", v2.uri, canary, reason="try",
                                  require_evaluation=True)
    record(reg, fingerprint, None)  # evaluated without a gate: not a passed evaluation
    with pytest.raises(EvaluationRequiredError, match="has no evaluation with a gate"):
        reg.rollouts.start_bluegreen("fraud", v2.uri, reason="try", require_evaluation=True)
    failed = record(reg, fingerprint, False)
    with pytest.raises(EvaluationRequiredError,
                       match=rf"newest evaluation \(#{failed}, .*\) failed its gate: "
                             r"accuracy >= 0\.9\. Give a reason"):
        reg.set_alias(MODEL, "production", 2, require_evaluation=True)
    assert reg.get_model(MODEL).aliases["production"] == 1  # nothing moved
    assert reg.rollouts.active("fraud") is None
    passed = record(reg, fingerprint, True)
    rollout = reg.rollouts.start_canary("fraud", v2.uri, canary, reason="try",
                                        require_evaluation=True)
    assert rollout.decisions[0].numbers["evaluation"] == {"evaluation": passed,
                                                          "verdict": "passed"}
    reg.rollouts.abort("fraud", reason="done")
    # a newer failed evaluation wins over an older pass
    record(reg, fingerprint, False)
    with pytest.raises(EvaluationRequiredError, match="failed its gate"):
        reg.rollouts.start_canary("fraud", v2.uri, canary, reason="again",
                                  require_evaluation=True)
    # an override names its reason and is audited; without the requirement nothing is checked
    reg.set_alias(MODEL, "production", 2, require_evaluation=True,
                  override_evaluation="hotfix for incident 42")
    assert reg.get_model(MODEL).aliases["production"] == 2
    override = reg.audit(action="evaluation.override")
    assert len(override) == 1 and override[0].version == 2
    assert override[0].after["reason"] == "hotfix for incident 42"
    assert "failed its gate" in override[0].after["missing"]
    assert override[0].after["action"] == f"moving {MODEL}@production"
    with pytest.raises(EvaluationRequiredError, match="override"):
        reg.set_alias(MODEL, "staging", 1, require_evaluation=True, override_evaluation="  ")
    # an override without the requirement would be neither checked nor audited: refused
    with pytest.raises(RegistryError, match="give require_evaluation"):
        reg.set_alias(MODEL, "staging", 2, override_evaluation="just because")
    with pytest.raises(RegistryError, match="give require_evaluation"):
        reg.rollouts.start_canary("fraud", v2.uri, canary, reason="again",
                                  override_evaluation="just because")
    assert "staging" not in reg.get_model(MODEL).aliases
    assert reg.rollouts.active("fraud") is None
    assert len(reg.audit(action="evaluation.override")) == 1
    reg.set_alias(MODEL, "staging", 1)


def test_the_registry_wide_policy_guards_every_way_to_traffic(reg: Registry, pkgs: Packages,
                                                              tmp_path: Any) -> None:
    """``require_evaluation`` as the registry's policy (``SHIPYARD_REQUIRE_EVALUATION``): no
    flag to remember, and none to leave off. Registering with an alias, moving an alias,
    deploying and starting a canary all need a passed evaluation or an audited override; a
    shadow (which answers no request) does not."""
    from shipyard.settings import Settings

    policy = Settings.from_env({"SHIPYARD_HOME": str(tmp_path),
                                "SHIPYARD_REQUIRE_EVALUATION": "1"})
    with Registry(f"sqlite:///{tmp_path / 'p.db'}", artifacts=tmp_path / "b",
                  settings=policy) as configured:
        assert configured.require_evaluation
    reg.require_evaluation = True
    with pytest.raises(EvaluationRequiredError, match="Nothing was registered"):
        reg.register(pkgs.base_dir, alias="production")
    with pytest.raises(NotFoundError, match="unknown model"):
        reg.get_model(MODEL)  # the refused registration left nothing behind
    record(reg, content_fingerprint(Manifest.read(pkgs.base_dir).to_dict()), True)
    v1 = reg.register(pkgs.base_dir, alias="production")  # evaluated before registering
    v2 = reg.register(pkgs.compatible)  # no alias: nothing to guard
    with pytest.raises(EvaluationRequiredError, match="has no evaluation with a gate"):
        reg.set_alias(MODEL, "production", 2)  # no flag needed
    with pytest.raises(EvaluationRequiredError, match=f"deploying {MODEL}/2"):
        reg.rollouts.deploy("fraud", v2.uri, reason="launch")
    reg.rollouts.deploy("fraud", v1.uri, reason="launch")
    with pytest.raises(EvaluationRequiredError, match="canary rollout"):
        reg.rollouts.start_canary("fraud", v2.uri, CanaryPlan(), reason="try")
    reg.rollouts.start_shadow("fraud", v2.uri, ShadowPlan(), reason="watch")
    reg.rollouts.abort("fraud", reason="done watching")
    reg.rollouts.deploy("fraud", v2.uri, reason="hotfix", override_evaluation="incident 9")
    assert [(o.version, o.after["action"], o.after["reason"]) for o in reg.audit(
        action="evaluation.override")] == [(2, f"deploying {MODEL}/2 on 'fraud'", "incident 9")]
    with pytest.raises(RegistryError, match="override is for an alias"):
        reg.register(pkgs.compatible, override_evaluation="why not")
