"""Defences of a served model, as pure functions: token buckets for rate limits
(``buckets``) and what an answer may show (``outputs``: labels only, rounding, noise that
never changes the label). No I/O: the Redis store and the server wire them."""

from shipyard.defences.buckets import ALLOWED, MemoryBuckets, Rate, RateError, Verdict, take
from shipyard.defences.outputs import OutputPolicy, OutputPolicyError, defend

__all__ = ["ALLOWED", "MemoryBuckets", "OutputPolicy", "OutputPolicyError", "Rate", "RateError",
           "Verdict", "defend", "take"]
