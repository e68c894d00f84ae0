"""Traffic policies as pure functions: which model version answers a request, from the
request's routing key and the endpoint's policy (see docs/architecture.md, *Routing*).

- `policies`: `Single`, `Weighted` (canary), `StickyAB`, `Shadow`, `BlueGreen`, validated on
  construction;
- `stored`: `policy_to_dict` / `policy_from_dict`, the JSON-able form the registry stores;
- `keys`: key specs (``header:X-User-Id``, ``json:user.id``, ``client``) and `extract_key`;
- `route`: `route(policy, key) -> Decision` and `bucket(salt, key)`, the stable hash.
"""

from __future__ import annotations

from shipyard.routing.keys import (
    DEFAULT_KEY,
    DEFAULT_KEY_SPEC,
    KeySpec,
    extract_key,
    parse_key_spec,
)
from shipyard.routing.policies import (
    BUCKETS,
    BlueGreen,
    Decision,
    Policy,
    Shadow,
    Single,
    StickyAB,
    Weighted,
)
from shipyard.routing.route import bucket, route
from shipyard.routing.stored import FORMAT_VERSION, policy_from_dict, policy_to_dict

__all__ = [
    "BUCKETS",
    "DEFAULT_KEY",
    "DEFAULT_KEY_SPEC",
    "FORMAT_VERSION",
    "BlueGreen",
    "Decision",
    "KeySpec",
    "Policy",
    "Shadow",
    "Single",
    "StickyAB",
    "Weighted",
    "bucket",
    "extract_key",
    "parse_key_spec",
    "policy_from_dict",
    "policy_to_dict",
    "route",
]
