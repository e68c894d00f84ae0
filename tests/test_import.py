"""`import shipyard` stays lean, and every public name resolves."""

import json
import subprocess
import sys

import shipyard

HEAVY = ["torch", "sklearn", "ray", "starlette", "fastapi", "uvicorn", "onnxruntime", "pandas",
         "typer", "lightgbm", "xgboost", "skl2onnx", "datasketches", "scipy"]


def test_import_shipyard_does_not_import_heavy_frameworks() -> None:
    code = ("import json, sys, shipyard; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_heavy_list_is_really_detected() -> None:
    # guards the test above against a typo'd module list: sklearn must show up once used
    code = ("import json, sys, shipyard, sklearn; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "sklearn" in json.loads(out.stdout)


def test_every_public_name_resolves() -> None:
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None, name
    assert set(dir(shipyard)) == set(shipyard.__all__)


def test_monitoring_entry_points_are_public() -> None:
    assert {"profile", "Profile", "compare", "DriftReport"} <= set(shipyard.__all__)
    assert shipyard.compare is shipyard.monitoring.compare


def test_unknown_attribute_raises() -> None:
    try:
        _ = shipyard.does_not_exist  # type: ignore[attr-defined]
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_error_tree() -> None:
    assert issubclass(shipyard.TamperedFileError, shipyard.IntegrityError)
    assert issubclass(shipyard.MissingFileError, shipyard.IntegrityError)
    assert issubclass(shipyard.IntegrityError, shipyard.PackageError)
    assert issubclass(shipyard.UnsupportedFormatVersion, shipyard.ManifestError)
    assert issubclass(shipyard.InputValidationError, shipyard.ShipyardError)


def test_the_cli_starts_without_loading_the_heavy_parts() -> None:
    # every command pays the CLI's import cost: the registry, web stack and frameworks load
    # only inside the commands that use them
    code = ("import json, sys, shipyard.cli.app; heavy = ['sqlalchemy', 'alembic', 'pandas', "
            "'pyarrow', 'starlette', 'uvicorn', 'onnxruntime', 'sklearn', 'torch']; "
            "print(json.dumps([m for m in heavy if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_rollout_plans_are_public() -> None:
    from shipyard.routing import plans

    for name in ("CanaryPlan", "ABPlan", "ShadowPlan", "BlueGreenPlan"):
        assert getattr(shipyard, name) is getattr(plans, name), name
    assert shipyard.CanaryPlan(steps=(10, 100)).to_dict()["steps"] == [10, 100]
