"""API keys in the registry (issue 17), on SQLite and PostgreSQL: stored as hashes, shown
once, listed without secrets, revoked for good, and every change audited; the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.app import app
from shipyard.errors import ConflictError, NotFoundError, RegistryError
from shipyard.registry import Registry
from shipyard.registry.api_keys import hash_secret

runner = CliRunner()


def test_keys_are_stored_hashed_and_audited(reg: Registry) -> None:
    key, secret = reg.api_keys.create("ci", "predict", endpoint="iris")
    assert secret.startswith("shp_") and len(secret) > 40
    assert key.prefix == secret[:10] and key.state() == "active"
    stored = reg.api_keys.snapshot()
    assert [(k.name, k.key_hash, k.scope, k.endpoint) for k in stored] == [
        ("ci", hash_secret(secret), "predict", "iris")]
    assert "secret" not in json.dumps(key.to_dict()) and secret not in json.dumps(key.to_dict())
    with pytest.raises(ConflictError, match="exists"):
        reg.api_keys.create("ci", "read")
    for name, scope in (("", "read"), ("a:b", "read"), ("ok", "root")):
        with pytest.raises(RegistryError):
            reg.api_keys.create(name, scope)
    with pytest.raises(RegistryError, match="past"):
        reg.api_keys.create("old", "read", expires_at=datetime.now(UTC) - timedelta(hours=1))
    soon, _ = reg.api_keys.create("soon", "read",
                                  expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert soon.expires_at is not None and {k.name for k in reg.api_keys.snapshot()} == {
        "ci", "soon"}
    assert reg.api_keys.mark_used("ci", "here:1") and not reg.api_keys.mark_used("ci", "x:2")
    reg.api_keys.revoke("ci")
    with pytest.raises(ConflictError, match="revoked already"):
        reg.api_keys.revoke("ci")
    with pytest.raises(NotFoundError):
        reg.api_keys.revoke("nobody")
    # the revoked one is marked: refused, yet still keeping the routes closed
    assert [(k.name, k.revoked) for k in reg.api_keys.snapshot()] == [("ci", True),
                                                                      ("soon", False)]
    assert reg.api_keys.get("ci").state() == "revoked"
    actions = [(r.action, (r.after or r.before)["name"]) for r in reg.audit()
               if r.action.startswith("key.")]
    assert actions == [("key.create", "ci"), ("key.create", "soon"), ("key.first_use", "ci"),
                       ("key.revoke", "ci")]
    assert all(secret not in json.dumps([r.to_dict() for r in reg.audit()]) for _ in [0])


def test_keys_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for var in ("SHIPYARD_REGISTRY_URL", "SHIPYARD_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    made = runner.invoke(app, ["keys", "create", "grafana", "--scope", "read",
                               "--expires", "30d"])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("shp_")
    listed = runner.invoke(app, ["keys", "list", "--json"])
    assert listed.exit_code == 0 and secret not in listed.output
    (row,) = json.loads(listed.output)
    assert (row["name"], row["scope"], row["state"]) == ("grafana", "read", "active")
    assert row["expires_at"] is not None
    bad = runner.invoke(app, ["keys", "create", "x", "--scope", "root"])
    assert bad.exit_code != 0 and "invalid scope" in str(bad.exception)
    bad = runner.invoke(app, ["keys", "create", "x", "--scope", "read", "--expires", "soon"])
    assert bad.exit_code != 0 and "--expires" in str(bad.exception)
    assert runner.invoke(app, ["keys", "revoke", "grafana"]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", "grafana"])
    assert again.exit_code != 0 and "revoked already" in str(again.exception)
    audit = runner.invoke(app, ["audit", "--action", "key.revoke", "--json"])
    assert json.loads(audit.output)[0]["before"]["name"] == "grafana"
