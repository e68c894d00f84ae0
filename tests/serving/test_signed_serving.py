"""Signed packages on the server (issue 17): a package signed by a trusted key loads with
trust (a native, pickled model needs no ``--trust``), and the trust is audited with what
granted it; with ``require_signed`` an unsigned version never loads and the error names the
reason."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard.packaging.signing import generate_key, sign
from shipyard.registry import Registry
from shipyard.server.app import create_app
from shipyard.service.config import EndpointConfig, ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A pickled (native) iris model: loading it runs pickle, so it needs trust."""
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    path = shipyard.package(model, x.astype(np.float32), name="iris", format="native") \
        .save(tmp_path_factory.mktemp("native") / "pkg")
    return path, x[:5].astype(np.float32), model.predict_proba(x[:5])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    settings = Settings.from_env({"SHIPYARD_HOME": str(tmp_path / "home")})
    reg = Registry(url=f"sqlite:///{tmp_path}/r.db", artifacts=tmp_path / "blobs",
                   settings=settings, actor="tester")
    yield reg
    reg.close()


@pytest.fixture
def trusted(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "trusted"
    folder.mkdir()
    public, _ = generate_key(tmp_path / "keys" / "release")
    shutil.copy(public, folder / public.name)
    return tmp_path / "keys" / "release", folder


async def _answer(plane: DataPlane, rows: np.ndarray) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(plane))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.post("/v1/endpoints/iris/predict",
                                 json={"instances": rows.tolist()})


def _plane(registry: Registry, tmp_path: Path, **options: object) -> DataPlane:
    config = ServeConfig(endpoints=(EndpointConfig(name="iris", model="models:/iris/1"),),
                         log_dir=str(tmp_path / "logs"), **options)  # type: ignore[arg-type]
    return DataPlane(config, settings=registry.settings, registry=registry)


def _start(plane: DataPlane) -> tuple[bool, str]:
    """Whether the endpoint's version loaded, and the error it failed with."""
    async def scenario() -> tuple[bool, str]:
        try:
            await plane.start()
        except Exception as exc:  # a server whose first load fails may refuse to start
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            await plane.close()
        ep = plane.endpoints["iris"]
        return ep.current is not None, str(ep.last_error)

    return asyncio.run(scenario())


@pytest.mark.parametrize("inference", ["thread", "process"])
def test_a_trusted_signature_trusts_a_native_package(
        registry: Registry, native: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
        trusted: tuple[Path, Path], inference: str) -> None:
    path, rows, want = native
    key, folder = trusted
    signed = Path(shutil.copytree(path, tmp_path / "signed"))
    kid = sign(signed, key)
    registry.register(signed)
    config = ServeConfig(endpoints=(EndpointConfig(name="iris", model="models:/iris/1",
                                                   inference=inference),),
                         log_dir=str(tmp_path / "logs"), trusted_keys=str(folder))
    plane = DataPlane(config, settings=registry.settings, registry=registry)

    async def scenario() -> httpx.Response:
        await plane.start()
        try:
            return await _answer(plane, rows)
        finally:
            await plane.close()

    response = asyncio.run(scenario())
    assert response.status_code == 200, response.text
    got = np.array([[p[k] for k in ("0", "1", "2")]
                    for p in response.json()["probabilities"]])
    assert np.allclose(got, want, atol=1e-5)
    trust = registry.audit(action="version.trust")
    assert [(a.model, a.version, a.after) for a in trust] == [
        ("iris", 1, {"endpoint": "iris", "by": f"signature:{kid}"})]


def test_unsigned_native_packages_still_need_trust(
        registry: Registry, native: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
        trusted: tuple[Path, Path]) -> None:
    registry.register(native[0])
    loaded, error = _start(_plane(registry, tmp_path, trusted_keys=str(trusted[1])))
    assert not loaded
    assert "is a pickle" in error and "--trust" in error
    assert registry.audit(action="version.trust") == []


def test_require_signed_refuses_an_unsigned_version(
        registry: Registry, tmp_path: Path, trusted: tuple[Path, Path]) -> None:
    x, y = load_iris(return_X_y=True)
    onnx = shipyard.package(LogisticRegression(max_iter=300).fit(x, y), x, name="iris")
    registry.register(onnx)
    loaded, error = _start(_plane(registry, tmp_path, trusted_keys=str(trusted[1]),
                                  require_signed=True))
    assert not loaded
    assert "UnsignedPackageError" in error and "is not signed" in error
