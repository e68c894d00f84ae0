"""Profile <-> bytes, without pickle: a ZIP archive (deflated, fixed timestamps, so the same
profile always gives the same bytes and the same SHA-256 in a package manifest).

    profile.json          header: {"format": "shipyard.profile", "version": 1, "rows",
                          "sample_size", "category_cap", "kll_k", "sample_rows",
                          "columns": [{"name", "kind", "dtype", "count", "nulls", "min",
                          "max", "mean", "variance", "exact", "category_cap", "counts",
                          "quantile_sketch", "items_sketch", "sample"}, ...],
                          "sha256": {member: hex digest} for every other member}
    sketches/<i>.kll      column i's KLL sketch, DataSketches' own serialize() bytes
    sketches/<i>.items    column i's frequent-items sketch (categorical past the cap)
    sample/<i>.npy        column i's reservoir values, numbers (np.save, no object arrays)
    sample/<i>.json       column i's reservoir values, text: a JSON list of strings and nulls

Member names use the column's position, not its name, so any column name is safe. Readers
check the format name and version, and every member's SHA-256 against the header before
parsing it, and raise ProfileError on anything malformed. The hashes matter: DataSketches'
C++ deserialisers reject most damaged bytes but can crash the process on some truncations.
They catch damage, not a forger who rewrites the header too; a package's profile.bin is
covered by the manifest's SHA-256 (and its signature when signed).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

import datasketches as ds
import numpy as np

from shipyard.errors import ProfileError
from shipyard.profiles.columns import ColumnKind, ColumnProfile
from shipyard.types import num_rows

FORMAT = "shipyard.profile"
VERSION = 1
HEADER = "profile.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_MAX_MEMBER = 1 << 30  # refuse members that would inflate past 1 GiB (a zip bomb)


def encode(columns: Mapping[str, ColumnProfile], rows: int, sample: Mapping[str, Any], *,
           sample_size: int, category_cap: int, kll_k: int) -> bytes:
    """The bytes of a Profile's fields (``decode`` gives them back): the codec knows columns,
    not the Profile class, so ``table`` imports it and nothing imports back."""
    buffer = io.BytesIO()
    members: dict[str, bytes] = {}
    entries = []
    for i, (name, col) in enumerate(columns.items()):
        entry = _column_header(col)
        if col.quantile_sketch is not None:
            entry["quantile_sketch"] = f"sketches/{i}.kll"
            members[entry["quantile_sketch"]] = bytes(col.quantile_sketch.serialize())
        if col.items_sketch is not None:
            entry["items_sketch"] = f"sketches/{i}.items"
            members[entry["items_sketch"]] = bytes(col.items_sketch.serialize())
        entry["sample"], members_sample = _sample_member(i, sample[name])
        members.update(members_sample)
        entries.append(entry)
    header = {"format": FORMAT, "version": VERSION, "rows": rows,
              "sample_size": sample_size, "category_cap": category_cap,
              "kll_k": kll_k, "sample_rows": num_rows(sample), "columns": entries,
              "sha256": {path: hashlib.sha256(data).hexdigest() for path, data in members.items()}}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        _write(archive, HEADER, json.dumps(header, separators=(",", ":")).encode())
        for path, data in members.items():
            _write(archive, path, data)
    return buffer.getvalue()


def decode(data: bytes) -> dict[str, Any]:
    """The keyword arguments of the Profile that ``encode`` wrote."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProfileError(f"profile bytes expected, got {type(data).__name__}")
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            for info in archive.infolist():
                if info.file_size > _MAX_MEMBER:
                    raise ProfileError(f"profile member {info.filename!r} is too large")
            header = json.loads(archive.read(HEADER))
            _check_header(header)
            reader = _Members(archive, header["sha256"])
            columns: dict[str, ColumnProfile] = {}
            sample: dict[str, Any] = {}
            for entry in header["columns"]:
                col = _column(entry, reader)
                columns[col.name] = col
                sample[col.name] = _read_sample(reader, entry["sample"],
                                                int(header["sample_rows"]))
    except ProfileError:
        raise
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError, IndexError, OSError,
            EOFError, RuntimeError, zipfile.LargeZipFile) as exc:
        raise ProfileError(f"not a valid shipyard profile: {type(exc).__name__}: "
                           f"{str(exc)[:200]}") from exc
    if not columns:
        raise ProfileError("not a valid shipyard profile: it has no columns")
    return {"columns": columns, "rows": int(header["rows"]), "sample": sample,
            "sample_size": int(header["sample_size"]),
            "category_cap": int(header["category_cap"]), "kll_k": int(header["kll_k"])}


def _write(archive: zipfile.ZipFile, path: str, data: bytes) -> None:
    info = zipfile.ZipInfo(path, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def _column_header(col: ColumnProfile) -> dict[str, Any]:
    return {"name": col.name, "kind": col.kind.value, "dtype": col.dtype, "count": col.count,
            "nulls": col.nulls, "min": col.min, "max": col.max, "mean": col.mean,
            "variance": col.variance, "exact": col.exact, "category_cap": col.category_cap,
            "counts": None if col.counts is None else dict(col.counts),
            "quantile_sketch": None, "items_sketch": None}


def _sample_member(i: int, values: Any) -> tuple[str, dict[str, bytes]]:
    arr = np.asarray(values)
    if arr.dtype.kind in "iufb":
        out = io.BytesIO()
        np.save(out, arr, allow_pickle=False)
        return f"sample/{i}.npy", {f"sample/{i}.npy": out.getvalue()}
    return f"sample/{i}.json", {f"sample/{i}.json": json.dumps(arr.tolist()).encode()}


def _check_header(header: Any) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ProfileError("not a shipyard profile: the header names another format")
    if header.get("version") != VERSION:
        raise ProfileError(f"profile format version {header.get('version')!r} is not one this "
                           f"shipyard reads ({VERSION}); upgrade shipyard")
    if not isinstance(header.get("columns"), list):
        raise ProfileError("not a valid shipyard profile: 'columns' is not a list")


class _Members:
    """Reads archive members, refusing any whose SHA-256 differs from the header's."""

    def __init__(self, archive: zipfile.ZipFile, digests: Any) -> None:
        if not isinstance(digests, dict):
            raise ValueError("'sha256' must map member names to digests")
        self.archive = archive
        self.digests = digests

    def read(self, path: str) -> bytes:
        data = self.archive.read(path)
        if hashlib.sha256(data).hexdigest() != self.digests.get(path):
            raise ProfileError(f"profile member {path!r} is damaged: its SHA-256 does not "
                               "match the header")
        return data


def _column(entry: dict[str, Any], archive: _Members) -> ColumnProfile:
    kll = entry["quantile_sketch"]
    items = entry["items_sketch"]
    counts = entry["counts"]
    if counts is not None and not all(isinstance(v, int) for v in counts.values()):
        raise ValueError(f"column {entry['name']!r}: counts must be integers")
    return ColumnProfile(
        name=str(entry["name"]), kind=ColumnKind(entry["kind"]), dtype=str(entry["dtype"]),
        count=int(entry["count"]), nulls=int(entry["nulls"]), min=_float(entry["min"]),
        max=_float(entry["max"]), mean=_float(entry["mean"]),
        variance=_float(entry["variance"]), exact=bool(entry["exact"]),
        category_cap=int(entry["category_cap"]),
        counts=None if counts is None else {str(k): int(v) for k, v in counts.items()},
        quantile_sketch=None if kll is None else
        ds.kll_doubles_sketch.deserialize(archive.read(kll)),
        items_sketch=None if items is None else
        ds.frequent_strings_sketch.deserialize(archive.read(items)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _read_sample(archive: _Members, path: str, rows: int) -> Any:
    raw = archive.read(path)
    if path.endswith(".npy"):
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    else:
        values = json.loads(raw)
        if not isinstance(values, list) or not all(v is None or isinstance(v, str)
                                                   for v in values):
            raise ValueError(f"{path} must be a JSON list of strings and nulls")
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
    if arr.ndim != 1 or len(arr) != rows:
        raise ValueError(f"{path} holds {arr.shape} values, the header says {rows} rows")
    return arr
