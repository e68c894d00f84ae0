"""The dashboard's sign-in token (``KeyRing.token``): it stands for a key without holding it,
expires, and stops working when its key is removed, changed, revoked or expires."""

from __future__ import annotations

from shipyard.registry.api_keys import StoredKey, hash_secret
from shipyard.service.keyring import KeyRing

KEY = {b"x-api-key": b"s3cret-key"}


def _as_key(token: str) -> dict[bytes, bytes]:
    return {b"x-api-key": token.encode()}


def test_a_token_stands_for_its_key_until_it_expires() -> None:
    keys = KeyRing({"ci": "s3cret-key", "other": "another-key"})
    token = keys.token(KEY, now=1000.0)
    assert token is not None and "s3cret-key" not in token and token.endswith(".ci")
    for now in (1000.0, 1000.0 + KeyRing.TOKEN_S):
        grant = keys.identify(_as_key(token), now=now)
        assert grant is not None and grant.name == "ci"
    assert keys.identify(_as_key(token), now=1001.0 + KeyRing.TOKEN_S) is None  # expired
    assert keys.token({b"x-api-key": b"wrong"}) is None
    for bad in ("shptok.", "shptok.x.y.ci", "shptok." + "9" * 40 + ".abc.ci",
                token.replace(".ci", ".other"), token[:-4] + "0" + token[-3:]):
        assert keys.identify(_as_key(bad), now=1000.0) is None, bad


def test_a_removed_changed_revoked_or_expired_key_ends_its_tokens() -> None:
    token = KeyRing({"ci": "s3cret-key"}).token(KEY, now=1000.0)
    assert token is not None
    assert KeyRing({"other": "s3cret-key"}).identify(_as_key(token), now=1000.0) is None
    assert KeyRing({"ci": "rotated-key"}).identify(_as_key(token), now=1000.0) is None
    assert KeyRing({}).identify(_as_key(token), now=1000.0) is None
    ring = KeyRing()
    stored = StoredKey("ci", hash_secret("s3cret-key"), "read", None, 5000.0, False)
    ring.load([stored])
    token = ring.token(KEY, now=1000.0)
    assert token is not None and ring.identify(_as_key(token), now=1000.0) is not None
    assert ring.identify(_as_key(token), now=5000.0) is None  # the key expired
    ring.load([])  # revoked: the registry no longer lists it
    assert ring.identify(_as_key(token), now=1000.0) is None
