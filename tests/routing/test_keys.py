"""Key specs parse (or fail clearly) and read a request's routing key, or None without one."""

from __future__ import annotations

import pytest

from shipyard.errors import RoutingError
from shipyard.routing import DEFAULT_KEY, DEFAULT_KEY_SPEC, extract_key, parse_key_spec


def test_specs_parse() -> None:
    spec = parse_key_spec("header:X-User-Id")
    assert (spec.source, spec.header, str(spec)) == ("header", "x-user-id", "header:X-User-Id")
    assert parse_key_spec("json:user.id").path == ("user", "id")
    assert parse_key_spec("client").source == "client"
    assert parse_key_spec(DEFAULT_KEY_SPEC) == DEFAULT_KEY
    assert DEFAULT_KEY.header == "x-routing-key"


@pytest.mark.parametrize(("text", "message"), [
    ("", "not understood"),
    ("cookie:session", "not understood"),
    ("header", "not understood"),
    ("header:", "is not a header name"),
    ("header:X User", "is not a header name"),
    ("header:X-User:Id", "is not a header name"),
    ("json:", "none empty"),
    ("json:user..id", "none empty"),
    ("json:.id", "none empty"),
    ("client:ip", "takes no argument"),
    ("header:" + "x" * 300, "at most 256"),
])
def test_a_bad_spec_names_the_problem_and_the_accepted_forms(text: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        parse_key_spec(text)


def test_a_spec_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(RoutingError, match="must be a string"):
        parse_key_spec(None)  # type: ignore[arg-type]


def test_header_keys_are_read_by_lower_case_name() -> None:
    headers = {"x-user-id": "u-17", "x-empty": ""}
    asked: list[str] = []

    def get(name: str) -> str | None:
        asked.append(name)
        return headers.get(name)

    assert extract_key(parse_key_spec("header:X-User-Id"), header=get) == "u-17"
    assert asked == ["x-user-id"]
    assert extract_key(parse_key_spec("header:X-Other"), header=get) is None
    assert extract_key(parse_key_spec("header:X-Empty"), header=get) is None
    assert extract_key(parse_key_spec("header:X-User-Id")) is None  # no header getter at all


def test_json_keys_follow_the_dotted_path() -> None:
    body = {"user": {"id": "alice", "num": 42, "score": 1.5, "flag": True, "none": None,
                     "obj": {"a": 1}},
            "instances": [{"customer": "c9"}]}
    spec = parse_key_spec
    assert extract_key(spec("json:user.id"), body=body) == "alice"
    assert extract_key(spec("json:user.num"), body=body) == "42"
    assert extract_key(spec("json:instances.0.customer"), body=body) == "c9"
    for missing in ["json:user.email", "json:user.id.more", "json:instances.1.customer",
                    "json:instances.x", "json:user.score", "json:user.flag", "json:user.none",
                    "json:user.obj", "json:nothing.at.all"]:
        assert extract_key(spec(missing), body=body) is None, missing
    assert extract_key(spec("json:user.id"), body=None) is None
    assert extract_key(spec("json:user.id"), body=[1, 2]) is None
    assert extract_key(spec("json:user.id"), body="not an object") is None


def test_client_keys_are_the_client_address() -> None:
    spec = parse_key_spec("client")
    assert extract_key(spec, client="10.0.0.7") == "10.0.0.7"
    assert extract_key(spec, client=None) is None
    assert extract_key(spec, header=lambda name: "ignored", client="::1") == "::1"
