"""Shared printing helpers for the CLI: JSON for machines, rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from shipyard.errors import RegistryError

console = Console()


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str), flush=True)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = Table(title=title)
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*(_cell(v) for v in row))
    console.print(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def parse_pairs(pairs: Sequence[str] | None, what: str = "tag") -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a clear error for anything else."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RegistryError(f"--{what} must look like key=value, got {pair!r}")
        out[key] = value
    return out


def parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RegistryError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo else value.astimezone()
