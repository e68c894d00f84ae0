"""``shipyard.Client`` / ``shipyard.AsyncClient``: call a shipyard server from Python.

    client = shipyard.Client("http://127.0.0.1:8000", api_key=None)
    result = client.predict("iris", df)            # DataFrame, dict of columns, records, numpy
    client.feedback("iris", result["request_id"], labels=[0, 2])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from shipyard.errors import ShipyardError
from shipyard.packaging.tabular import is_dataframe


class ServerError(ShipyardError):
    """The server answered with an error status; ``problems`` lists validation problems."""

    def __init__(self, status: int, message: str, problems: Sequence[Any] = ()) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__(f"HTTP {status}: {message}")


def _clean(value: Any) -> Any:
    """A JSON-ready value: missing markers (NaN, pd.NA, NaT) become null, numpy values and
    arrays (at any depth) plain Python, datetimes ISO 8601 strings."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0:
        return [_clean(v) for v in value]
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def encode(data: Any) -> dict[str, Any]:
    """The JSON body for ``data`` (DataFrame, dict of columns, records or array)."""
    if is_dataframe(data):
        return {"inputs": {str(c): [_clean(v) for v in data[c].tolist()]
                           for c in data.columns}}
    if isinstance(data, Mapping):
        return {"inputs": {str(k): [_clean(v) for v in list(v)] for k, v in data.items()}}
    if hasattr(data, "tolist"):
        return {"inputs": _clean(data.tolist())}
    if isinstance(data, Sequence) and data and all(isinstance(r, Mapping) for r in data):
        return {"instances": [{k: _clean(v) for k, v in r.items()} for r in data]}
    return {"inputs": list(data)}


def _feedback_body(request_id: str, label: Any, labels: Sequence[Any] | None,
                   replace: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": request_id}
    if labels is not None:
        body["labels"] = [_clean(v) for v in labels]
    else:
        body["label"] = _clean(label)
    if replace:  # labels given before are replaced (else a second label is refused: 409)
        body["replace"] = True
    return body


def _result(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text}
    if response.status_code >= 400:
        raise ServerError(response.status_code, str(body.get("error", body)),
                          body.get("problems", ()))
    return body


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Client:
    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=_headers(api_key),
                                  timeout=timeout, transport=transport)

    def predict(self, endpoint: str, data: Any, *, request_id: str | None = None) -> Any:
        headers = {"X-Request-Id": request_id} if request_id else {}
        return _result(self._http.post(f"/v1/endpoints/{endpoint}/predict", json=encode(data),
                                       headers=headers))

    def feedback(self, endpoint: str, request_id: str, label: Any = None, *,
                 labels: Sequence[Any] | None = None, replace: bool = False) -> Any:
        return _result(self._http.post(f"/v1/endpoints/{endpoint}/feedback",
                                       json=_feedback_body(request_id, label, labels, replace)))

    def ready(self) -> bool:
        return self._http.get("/v2/health/ready").status_code == 200

    def endpoints(self) -> Any:
        return _result(self._http.get("/v1/endpoints"))["endpoints"]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncClient:
    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=_headers(api_key),
                                       timeout=timeout, transport=transport)

    async def predict(self, endpoint: str, data: Any, *, request_id: str | None = None) -> Any:
        headers = {"X-Request-Id": request_id} if request_id else {}
        return _result(await self._http.post(f"/v1/endpoints/{endpoint}/predict",
                                             json=encode(data), headers=headers))

    async def feedback(self, endpoint: str, request_id: str, label: Any = None, *,
                       labels: Sequence[Any] | None = None, replace: bool = False) -> Any:
        return _result(await self._http.post(f"/v1/endpoints/{endpoint}/feedback", json=(
            _feedback_body(request_id, label, labels, replace))))

    async def ready(self) -> bool:
        return (await self._http.get("/v2/health/ready")).status_code == 200

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
