"""What an endpoint lets its answers show: the pure rewrite of a model's outputs.

Model-extraction attacks learn most from probabilities (the exact scores near the decision
boundary), so an endpoint may answer less than the model says:

* ``labels_only``: the label alone, no probabilities (a regressor's ``value`` is its answer
  and stays);
* ``round``: probabilities and scores rounded to that many decimals;
* ``noise``: Gaussian noise of that standard deviation on the probabilities, which never
  changes the winning class: the original argmax stays strictly largest, each row is
  renormalised (sums to 1) and lies in [0, 1]. The noise of a row is drawn from a generator
  seeded by a keyed hash (BLAKE2b under the server's secret) of the row's true
  probabilities, so the same question always gets the same noisy answer: repeating a query
  and averaging gives nothing. (Asking many slightly different questions still averages it
  out in part; the rate limits bound how many.)

Only the HTTP answer is rewritten; the prediction log keeps the model's true outputs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.types import Columns

PROBABILITIES = "probabilities"
LABEL = "label"
GAP = 1e-9  # how much the winning class at least leads the others after noise


class OutputPolicyError(ShipyardError):
    """An output policy that is not valid."""


@dataclass(frozen=True)
class OutputPolicy:
    labels_only: bool = False
    round: int | None = None  # decimals
    noise: float = 0.0  # standard deviation, on probabilities

    def __post_init__(self) -> None:
        if not isinstance(self.labels_only, bool):
            raise OutputPolicyError(f"labels_only is true or false, not {self.labels_only!r}")
        if self.round is not None and (isinstance(self.round, bool) or not isinstance(
                self.round, int) or not 0 <= self.round <= 15):
            raise OutputPolicyError(f"round is a whole number of decimals from 0 to 15, not "
                                    f"{self.round!r}")
        if isinstance(self.noise, bool) or not isinstance(self.noise, int | float) \
                or not 0 <= self.noise <= 1:
            raise OutputPolicyError(f"noise is a standard deviation from 0 to 1, not "
                                    f"{self.noise!r}")

    @property
    def active(self) -> bool:
        """Whether it changes anything."""
        return self.labels_only or self.round is not None or self.noise > 0

    def to_spec(self) -> dict[str, Any]:
        """As JSON values (the serve config; the inference process's batch spec)."""
        return {"labels_only": self.labels_only, "round": self.round, "noise": self.noise}

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> OutputPolicy:
        return cls() if not spec else cls(**spec)


NONE = OutputPolicy()


def defend(outputs: Columns, policy: OutputPolicy, secret: bytes = b"") -> Columns:
    """``outputs`` as ``policy`` lets the answer show them (a new mapping; the arrays given
    are never changed). ``secret`` keys the noise (required when the policy adds noise)."""
    if not policy.active:
        return outputs
    out = dict(outputs)
    if policy.labels_only and LABEL in out:
        out.pop(PROBABILITIES, None)
    proba = out.get(PROBABILITIES)
    if proba is not None and policy.noise > 0 and proba.ndim == 2 and proba.shape[1] > 1:
        if not secret:
            raise OutputPolicyError("output noise needs a server secret")
        out[PROBABILITIES] = noisy(proba, policy.noise, secret)
    if policy.round is not None:
        for name, arr in out.items():
            if name != LABEL and arr.dtype.kind == "f":
                out[name] = np.round(arr, policy.round)
    return out


def noisy(proba: np.ndarray, sigma: float, secret: bytes) -> np.ndarray:
    """Each row of ``proba`` plus keyed Gaussian noise, its argmax kept strictly largest,
    clipped to [0, 1] and renormalised to sum to 1."""
    proba = np.ascontiguousarray(proba, dtype=np.float64)
    rows = proba.shape[0]
    winner = np.argmax(proba, axis=1)
    q = np.clip(proba + sigma * normals(proba, secret), 0.0, 1.0)
    everyone = np.arange(rows)
    others = q.copy()
    others[everyone, winner] = -math.inf
    lead = others.max(axis=1) + GAP
    q[everyone, winner] = np.maximum(q[everyone, winner], lead)
    q /= q.sum(axis=1, keepdims=True)
    return q


def normals(proba: np.ndarray, secret: bytes) -> np.ndarray:
    """Standard normal numbers, one per value of ``proba`` (C-contiguous float64), each row's
    a function of the secret and that row alone: BLAKE2b keyed by the secret over the row's
    bytes gives 8 uniform numbers a block (the block number is the salt), Box-Muller turns
    them into normals."""
    rows, classes = proba.shape
    key = secret if len(secret) <= 64 else hashlib.sha256(secret).digest()
    blocks = -(-classes // 8)
    salts = [b.to_bytes(16, "little") for b in range(blocks)]
    data = proba.tobytes()
    width = classes * 8
    digests = b"".join(
        hashlib.blake2b(data[i * width:(i + 1) * width], key=key, salt=salt,
                        digest_size=64).digest()
        for i in range(rows) for salt in salts)
    uniform = (np.frombuffer(digests, dtype="<u8").reshape(rows, blocks * 8) >> 11) \
        * 2.0 ** -53
    radius = np.sqrt(-2.0 * np.log1p(-uniform[:, 0::2]))
    angle = 2.0 * math.pi * uniform[:, 1::2]
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :classes]
