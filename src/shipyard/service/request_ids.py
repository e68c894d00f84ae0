"""Request ids: 128 random bits from the OS as 32 hex digits, drawn in blocks.

A forked child forgets its parent's unused ids, so two processes never hand out the same one.
"""

from __future__ import annotations

import os

_ID_BLOCK = 256  # ids drawn per os.urandom call
_ids: list[str] = []  # unused random ids of this process


def _forget_ids() -> None:
    _ids.clear()  # a forked child must never hand out its parent's ids


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids)


def new_request_id() -> str:
    """An unguessable request id: 128 random bits from the OS (32 hex digits). They are
    drawn in blocks of ``_ID_BLOCK``, so a request costs a list pop rather than a syscall;
    ``list.pop`` is atomic, so threads never share one."""
    try:
        return _ids.pop()
    except IndexError:
        block = os.urandom(16 * _ID_BLOCK).hex()
        _ids.extend(block[i:i + 32] for i in range(0, len(block), 32))
        return _ids.pop()
