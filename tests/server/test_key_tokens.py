"""The dashboard's sign-in token (``ApiKeys.token`` / ``redeem``): it stands for a key
without holding it, expires, and stops working when its key is removed or changed."""

from __future__ import annotations

from shipyard.server.asgi import ApiKeys

KEY = {b"x-api-key": b"s3cret-key"}


def test_a_token_stands_for_its_key_until_it_expires() -> None:
    keys = ApiKeys({"ci": "s3cret-key", "other": "another-key"})
    token = keys.token(KEY, now=1000.0)
    assert token is not None and "s3cret-key" not in token and token.endswith(".ci")
    assert keys.redeem(token, now=1000.0) == b"s3cret-key"
    assert keys.redeem(token, now=1000.0 + ApiKeys.TOKEN_S) == b"s3cret-key"
    assert keys.redeem(token, now=1001.0 + ApiKeys.TOKEN_S) is None  # expired
    assert keys.token({b"x-api-key": b"wrong"}) is None
    for bad in ("", "x.y.ci", "9" * 40 + ".abc.ci", token.replace(".ci", ".other")):
        assert keys.redeem(bad, now=1000.0) is None, bad


def test_a_removed_or_changed_key_ends_its_tokens() -> None:
    token = ApiKeys({"ci": "s3cret-key"}).token(KEY, now=1000.0)
    assert token is not None
    assert ApiKeys({"other": "s3cret-key"}).redeem(token, now=1000.0) is None
    assert ApiKeys({"ci": "rotated-key"}).redeem(token, now=1000.0) is None
    assert ApiKeys({}).redeem(token, now=1000.0) is None
