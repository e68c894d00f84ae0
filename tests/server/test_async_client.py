"""``shipyard.AsyncClient`` against the app through ``httpx.ASGITransport`` (lifespan run by
the test, as a server would)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

import shipyard
from server.helpers import assert_matches_local, endpoint, local
from shipyard.client import ServerError
from shipyard.server.app import create_app
from shipyard.service.config import ServeConfig
from shipyard.service.dataplane import DataPlane
from shipyard.settings import Settings
from shipyard.stores.predictions import read_log


def app_for(tmp_path: Path, *endpoints: Any, **options: Any) -> Any:
    config = ServeConfig(endpoints=endpoints, log_dir=str(tmp_path / "logs"), **options)
    return create_app(DataPlane(config, Settings.from_env({"SHIPYARD_HOME": str(tmp_path)})))


def test_async_client_predicts_concurrently_and_feeds_back(packages, tmp_path) -> None:
    frame = packages.iris_x.iloc[[0, 60, 120]]
    expected = local(packages.iris, frame)
    app = app_for(tmp_path, endpoint("iris", packages.iris))

    async def main() -> list[Any]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with shipyard.AsyncClient("http://shipyard.test", transport=transport) as api:
                assert await api.ready()
                results = await asyncio.gather(*(
                    api.predict("iris", frame, request_id=f"async-{i}") for i in range(8)))
                feedback = await api.feedback("iris", "async-3", labels=[0, 1, 2])
                with pytest.raises(ServerError) as invalid:
                    await api.predict("iris", frame.drop(columns=frame.columns[0]))
                return [results, feedback, invalid.value]

    results, feedback, invalid = asyncio.run(main())
    for i, result in enumerate(results):
        assert result["request_id"] == f"async-{i}"
        assert_matches_local(result, expected)
    assert feedback == {"accepted": 3, "requests": 1}
    assert invalid.status == 422
    assert len(invalid.problems) == 1 and "missing input columns" in invalid.problems[0][
        "message"]
    logged = read_log(tmp_path / "logs", "iris")
    assert logged.num_rows == 8 * 3
    assert sorted(set(logged.column("request_id").to_pylist())) == sorted(
        f"async-{i}" for i in range(8))
    labels = read_log(tmp_path / "logs", "iris", kind="feedback").column("label").to_pylist()
    assert labels == [0, 1, 2]


def test_async_client_sends_the_api_key(packages, tmp_path) -> None:
    app = app_for(tmp_path, endpoint("iris", packages.iris), api_keys={"ci": "s3cret"})
    rows = packages.iris_x.head(1).to_dict("records")

    async def main() -> tuple[Any, ServerError]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with shipyard.AsyncClient("http://t", api_key="s3cret",
                                            transport=transport) as keyed:
                answer = await keyed.predict("iris", rows)
            async with shipyard.AsyncClient("http://t", transport=transport) as anonymous:
                assert await anonymous.ready()  # health stays open
                with pytest.raises(ServerError) as denied:
                    await anonymous.predict("iris", rows)
            return answer, denied.value

    answer, denied = asyncio.run(main())
    assert answer["predictions"] == local(packages.iris, rows).predictions.tolist()
    assert denied.status == 401 and "API key" in str(denied)


class ThroughTestClient(httpx.BaseTransport):
    """Sends ``shipyard.Client``'s requests through a running TestClient (public API only)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.request(request.method, str(request.url), headers=request.headers,
                                     content=request.read())
        return httpx.Response(answer.status_code, headers=answer.headers,
                              content=answer.content)


def test_sync_client_sends_the_api_key(serve, packages) -> None:
    rows = packages.iris_x.head(2)
    with serve(endpoint("iris", packages.iris), api_keys={"ci": "s3cret"}) as s:
        transport = ThroughTestClient(s.client)
        with shipyard.Client("http://testserver", api_key="s3cret", transport=transport) as api:
            result = api.predict("iris", rows)
            assert [e["name"] for e in api.endpoints()] == ["iris"]
        with shipyard.Client("http://testserver", transport=transport) as anonymous:
            assert anonymous.ready()
            with pytest.raises(ServerError) as denied:
                anonymous.predict("iris", rows)
    assert_matches_local(result, local(packages.iris, rows))
    assert denied.value.status == 401
