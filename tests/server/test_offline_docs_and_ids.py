"""``/docs`` needs nothing from the internet, and a request id a client chooses is bounded
(it is echoed in a response header and stored with every logged row)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.helpers import endpoint, oip_columns
from shipyard.protocol.codec import MAX_ID_LENGTH
from shipyard.server.docs_page import DocsPage

LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def test_docs_page_loads_nothing_from_outside_the_server(serve, packages) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        page = s.client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert not re.search(r"https?://", page.text), page.text
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "http" not in policy
        links = LINK.findall(page.text)
        assert "/docs/swagger-ui-bundle.js" in links and "/openapi.json" in links
        for link in links:  # everything the page names, this server serves
            assert link.startswith("/"), link
            got = s.client.get(link)
            assert got.status_code == 200, link
        start = s.client.get("/docs/start.js").text
        assert "validatorUrl: null" in start  # Swagger UI's online validator: off
        bundle = s.client.get("/docs/swagger-ui-bundle.js")
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert b"SwaggerUIBundle" in bundle.content
        assert s.client.get("/docs/swagger-ui.js.map").status_code == 404


def test_docs_page_without_swagger_ui_installed_still_needs_no_internet() -> None:
    page = DocsPage()
    page.static = None  # as if swagger-ui-py were not installed
    assert b"/openapi.json" in page.html and b"http" not in page.html
    assert page.asset("swagger-ui-bundle.js") is None


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_long_x_request_id_is_refused_on_both_hot_routes(serve, packages,
                                                         inference: str) -> None:
    rows = packages.iris_x.head(2)
    infer = {"inputs": oip_columns(rows)}
    predict = {"dataframe_records": rows.to_dict(orient="records")}
    too_long = "r" * (MAX_ID_LENGTH + 1)
    just_right = "r" * MAX_ID_LENGTH
    with serve(endpoint("iris", packages.iris, inference=inference)) as s:
        for path, body in (("/v1/endpoints/iris/predict", predict),
                           ("/v2/models/iris/infer", infer),
                           ("/v2/models/iris/versions/1/infer", infer)):
            refused = s.client.post(path, json=body, headers={"X-Request-Id": too_long})
            assert refused.status_code == 400, (path, refused.text)
            assert "X-Request-Id" in refused.json()["error"]
            assert too_long not in refused.text and "x-request-id" not in refused.headers
            fine = s.client.post(path, json=body, headers={"X-Request-Id": just_right})
            assert fine.status_code == 200, (path, fine.text)
            assert fine.headers["x-request-id"] == just_right
        huge = s.client.post("/v1/endpoints/iris/predict", json=predict,
                             headers={"X-Request-Id": "x" * 7_000_000})
        assert huge.status_code == 400
    logged = "".join(p.read_bytes().decode("latin-1") for p in s.log_dir.rglob("*.parquet"))
    assert too_long not in logged


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_long_infer_body_id_is_refused(serve, packages, inference: str) -> None:
    rows = packages.iris_x.head(2)
    with serve(endpoint("iris", packages.iris, inference=inference)) as s:
        too_long = s.client.post("/v2/models/iris/infer", json={
            "id": "i" * (MAX_ID_LENGTH + 1), "inputs": oip_columns(rows)})
        assert too_long.status_code == 400, too_long.text
        assert "'id'" in too_long.json()["error"] and "at most 256" in too_long.json()["error"]
        assert "x-request-id" not in too_long.headers
        fine = s.client.post("/v2/models/iris/infer", json={
            "id": "i" * MAX_ID_LENGTH, "inputs": oip_columns(rows)})
        assert fine.status_code == 200 and fine.json()["id"] == "i" * MAX_ID_LENGTH


def test_long_feedback_request_id_is_refused(serve, packages, tmp_path: Path) -> None:
    with serve(endpoint("iris", packages.iris)) as s:
        refused = s.client.post("/v1/endpoints/iris/feedback", json={
            "request_id": "f" * (MAX_ID_LENGTH + 1), "label": 1})
        assert refused.status_code == 400, refused.text
        assert "request_id" in refused.json()["error"]
