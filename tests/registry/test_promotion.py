"""The promotion guard: an alias never moves to a version that would break its clients."""

from __future__ import annotations

import pytest

from registry.helpers import MODEL, Packages
from shipyard.errors import IncompatibleSignatureError
from shipyard.registry import Registry

BREAKING = [
    ("removed_column", ["input 'petal_width' removed or renamed"]),
    ("renamed_column", ["input 'petal_width' removed or renamed",
                        "new required input 'petal_w'"]),
    ("narrowed_dtype", ["input 'petal_width' type narrowed: float64 -> int64"]),
    ("relabelled", ["class labels changed: [0, 1, 2] -> ['setosa', 'versicolor', 'virginica']"]),
]


@pytest.mark.parametrize(("variant", "problems"), BREAKING, ids=[b[0] for b in BREAKING])
def test_incompatible_move_is_refused(reg: Registry, pkgs: Packages, variant: str,
                                      problems: list[str]) -> None:
    reg.register(pkgs.base, alias="production")
    reg.register(getattr(pkgs, variant))
    audit_before = reg.audit()
    with pytest.raises(IncompatibleSignatureError) as info:
        reg.set_alias(MODEL, "production", 2)
    for problem in problems:
        assert any(problem in line for line in info.value.diff), info.value.diff
    assert "iris@production" in str(info.value) and problems[0] in str(info.value)
    # nothing changed, nothing audited
    assert reg.get_version("iris@production").version == 1
    assert reg.get_model(MODEL).aliases == {"production": 1}
    assert reg.audit() == audit_before


def test_incompatible_register_with_alias_is_refused_whole(reg: Registry,
                                                           pkgs: Packages) -> None:
    reg.register(pkgs.base, alias="production")
    with pytest.raises(IncompatibleSignatureError, match="petal_width"):
        reg.register(pkgs.removed_column, alias="production")
    assert reg.get_model(MODEL).latest_version == 1  # the version was rolled back with it
    assert [r.action for r in reg.audit()] == ["version.register"]
    assert reg.register(pkgs.removed_column).version == 2  # no gap


def test_forced_move_is_audited_as_forced(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, alias="production")
    reg.register(pkgs.narrowed_dtype)
    moved = reg.set_alias(MODEL, "production", 2, force=True)
    assert moved.aliases == ("production",)
    assert reg.get_version("iris@production").version == 2
    last = reg.audit()[-1]
    assert (last.action, last.alias, last.forced) == ("alias.set", "production", True)
    assert (last.before, last.after) == ({"version": 1}, {"version": 2})


def test_forced_register_with_alias_is_audited_as_forced(reg: Registry,
                                                         pkgs: Packages) -> None:
    reg.register(pkgs.base, alias="production")
    reg.register(pkgs.relabelled, alias="production", force=True)
    assert reg.get_version("iris@production").version == 2
    assert reg.audit()[-1].forced is True


def test_compatible_move_is_not_forced(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, alias="production")
    reg.register(pkgs.compatible)
    reg.set_alias(MODEL, "production", 2)
    assert reg.get_version("iris@production").version == 2
    reg.set_alias(MODEL, "production", 1, force=True)  # force with nothing to override
    records = reg.audit(action="alias.set")
    assert [(r.after, r.forced) for r in records] == [({"version": 2}, False),
                                                      ({"version": 1}, False)]


def test_new_alias_needs_no_compatibility(reg: Registry, pkgs: Packages) -> None:
    reg.register(pkgs.base, alias="production")
    reg.register(pkgs.removed_column)
    reg.set_alias(MODEL, "candidate", 2)  # nothing to compare with: not a promotion
    assert reg.get_model(MODEL).aliases == {"production": 1, "candidate": 2}
    assert reg.audit()[-1].forced is False
