"""The served OpenAPI 3.1 document (used by /docs, clients and schemathesis)."""

from __future__ import annotations

from typing import Any

from shipyard._version import __version__
from shipyard.server.openapi_admin import admin_paths

_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string"},
                         "problems": {"type": "array", "items": {
                             "type": "object",
                             "properties": {"field": {"type": "string"},
                                            "message": {"type": "string"}}}}}}
_VALUE: dict[str, Any] = {"type": ["number", "string", "boolean", "null"]}
_COLUMNS = {"type": "object", "additionalProperties": {"type": "array", "items": _VALUE}}
_RECORDS = {"type": "array", "items": {"type": "object", "additionalProperties": _VALUE}}


def _err(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


NOT_READY = "Not ready: `not_ready` names each endpoint without a model, and why"
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
# serve.yaml's open_routes names -> the paths they open
OPENABLE = {"metrics": ("/metrics",), "openapi": ("/openapi.json",),
            "docs": ("/docs", "/docs/{asset}")}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key as `Authorization: Bearer KEY`."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "An API key in the `X-API-Key` header."},
}


def openapi_document(endpoints: list[str], *, api_keys: bool = False,
                     open_routes: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The document; with ``api_keys`` every route but health (and those ``open_routes``
    opens) declares that it takes a key (Bearer or X-API-Key) and may answer 401, or 403
    for a key whose scope or endpoint does not allow it."""
    document = _document(endpoints)
    document["paths"].update(admin_paths())
    if api_keys:
        public = PUBLIC_PATHS.union(*(OPENABLE.get(r, ()) for r in open_routes))
        document["components"]["securitySchemes"] = SECURITY_SCHEMES
        unauthorised = _err("Missing, invalid, expired or revoked API key")
        forbidden = _err("The key's scope or endpoint does not allow this route")
        for path, operations in document["paths"].items():
            if path in public:
                continue
            for method, op in operations.items():
                operations[method] = {**op, "security": [{"bearer": []}, {"apiKey": []}],
                                      "responses": {**op["responses"], "401": unauthorised,
                                                    "403": forbidden}}
    return document


def _document(endpoints: list[str]) -> dict[str, Any]:
    name_param = {"name": "name", "in": "path", "required": True,
                  "schema": {"type": "string", "enum": endpoints or ["model"]}}
    version_param = {"name": "version", "in": "path", "required": True,
                     "schema": {"type": "string"}}
    errors = {"400": _err("Malformed request"), "404": _err("Unknown endpoint or version"),
              "413": _err("Body over the size limit"),
              "429": _err("Over a rate limit: retry after the Retry-After header (the body "
                          "names the limit)"),
              "422": _err("Input does not match the model signature (every problem listed)"),
              "503": _err("Overloaded: retry after the Retry-After header"),
              "504": _err("Timed out")}
    infer_op = {
        "summary": "Open Inference Protocol infer",
        "parameters": [name_param],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/InferRequest"}}}},
        "responses": {"200": _ok("Outputs", {"$ref": "#/components/schemas/InferResponse"}),
                      **errors},
    }
    infer_v = {**infer_op, "parameters": [name_param, version_param]}
    meta_op = {"summary": "Model metadata", "parameters": [name_param],
               "responses": {"200": _ok("Signature as OIP tensors"), "404": errors["404"]}}
    ready_op = {"summary": "Model ready", "parameters": [name_param],
                "responses": {"200": _ok("Ready"), "400": _ok("Not ready"),
                              "404": errors["404"]}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "shipyard inference server", "version": __version__,
                 "description": "Simple JSON API and the Open Inference Protocol (KServe V2)."},
        "paths": {
            "/v1/endpoints": {"get": {"summary": "Served endpoints",
                                      "responses": {"200": _ok("Endpoints")}}},
            "/v1/endpoints/{name}/predict": {"post": {
                "summary": "Predict (simple JSON)",
                "parameters": [name_param],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
                "responses": {"200": _ok("Predictions",
                                         {"$ref": "#/components/schemas/PredictResponse"}),
                              **errors}}},
            "/v1/endpoints/{name}/feedback": {"post": {
                "summary": "Ground-truth labels for logged requests",
                "parameters": [name_param],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Feedback"}}}},
                "responses": {"200": _ok("Accepted"), "400": errors["400"],
                              "404": _err("Unknown endpoint, or a request id the server "
                                          "never answered"),
                              "409": _err("The request was labelled before (send "
                                          "\"replace\": true to replace its labels)"),
                              "413": errors["413"], "429": errors["429"],
                              "422": _err("A label does not fit the model's task")}}},
            "/v2/health/live": {"get": {"summary": "Server live",
                                        "responses": {"200": _ok("Live")}}},
            "/v2/health/ready": {"get": {"summary": "Server ready (every model loaded and "
                                                   "warmed up)",
                                         "responses": {"200": _ok("Ready"),
                                                       "503": _ok(NOT_READY)}}},
            "/v2": {"get": {"summary": "Server metadata", "responses": {"200": _ok("Metadata")}}},
            "/v2/models/{name}": {"get": meta_op},
            "/v2/models/{name}/versions/{version}": {
                "get": {**meta_op, "parameters": [name_param, version_param]}},
            "/v2/models/{name}/ready": {"get": ready_op},
            "/v2/models/{name}/versions/{version}/ready": {
                "get": {**ready_op, "parameters": [name_param, version_param]}},
            "/v2/models/{name}/infer": {"post": infer_op},
            "/v2/models/{name}/versions/{version}/infer": {"post": infer_v},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "Metrics",
                                                       "content": {"text/plain": {}}}}}},
        },
        "components": {"schemas": {
            "Error": _ERROR,
            "PredictRequest": {"type": "object", "oneOf": [
                {"required": ["inputs"], "properties": {"inputs": {
                    "oneOf": [_COLUMNS, _RECORDS]}}},
                {"required": ["instances"], "properties": {"instances": _RECORDS}},
                {"required": ["dataframe_split"], "properties": {"dataframe_split": {
                    "type": "object", "required": ["columns", "data"],
                    "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                                   "data": {"type": "array", "items": {
                                       "type": "array", "items": _VALUE}}}}}},
            ]},
            "PredictResponse": {"type": "object",
                                "required": ["predictions", "model", "version", "request_id"],
                                "properties": {"predictions": {"type": "array"},
                                               "probabilities": {
                                                   "type": "array",
                                                   "description": "absent where the endpoint "
                                                   "answers labels only (labels_only)"},
                                               "model": {"type": "string"},
                                               "version": {"type": "integer"},
                                               "request_id": {"type": "string"}}},
            "Feedback": {"type": "object", "properties": {
                "request_id": {"type": "string"}, "label": _VALUE,
                "labels": {"type": "array", "items": _VALUE},
                "replace": {"type": "boolean"},
                "feedback": {"type": "array", "items": {"type": "object"}}}},
            "InferRequest": {"type": "object", "required": ["inputs"], "properties": {
                "id": {"type": "string"},
                "inputs": {"type": "array", "items": {
                    "type": "object", "required": ["name", "shape", "datatype", "data"],
                    "properties": {"name": {"type": "string"},
                                   "shape": {"type": "array", "items": {"type": "integer"}},
                                   "datatype": {"type": "string"},
                                   "data": {"type": "array"}}}},
                "outputs": {"type": "array", "items": {
                    "type": "object", "properties": {"name": {"type": "string"}}}}}},
            "InferResponse": {"type": "object", "required": ["model_name", "outputs"],
                              "properties": {"model_name": {"type": "string"},
                                             "model_version": {"type": "string"},
                                             "id": {"type": "string"},
                                             "outputs": {"type": "array"}}},
        }},
    }

