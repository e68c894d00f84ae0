"""The package manifest (``shipyard.json``): what a package holds and how to run it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import ManifestError, PackageError, UnsupportedFormatVersion
from shipyard.packaging.integrity import FileEntry, safe_relpath
from shipyard.packaging.signature import Signature

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST_FILE = "shipyard.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: object) -> str:
    """``name`` if it is a valid model name; PackageError saying what is wrong otherwise."""
    if not isinstance(name, str) or not name:
        raise PackageError("model name must be a non-empty string")
    if ".." in name or not _NAME.fullmatch(name):  # fullmatch: "$" would accept "x\n"
        raise PackageError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..', path separators or control characters")
    return name


def content_fingerprint(doc: Mapping[str, Any]) -> str:
    """The SHA-256 of what decides a package's answers: its files' hashes, its runtimes and
    its signature, not its name or metadata. ``doc`` is a manifest's ``to_dict()`` (as the
    registry stores it), so an evaluation of a package directory applies to every version
    registered from those bytes, under any name."""
    try:
        body = {"files": sorted((str(f["path"]), str(f["sha256"])) for f in doc["files"]),
                "runtimes": doc["runtimes"], "signature": doc["signature"]}
    except (KeyError, TypeError) as exc:
        raise ManifestError(f"a manifest without files, runtimes or signature: {exc}") from exc
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class RuntimeSpec:
    """How one runtime runs this package: which files it reads and its options."""

    name: str
    files: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "files": list(self.files), "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimeSpec:
        try:
            return cls(str(data["name"]), tuple(safe_relpath(str(f)) for f in data["files"]),
                       dict(data.get("options", {})))
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"malformed runtime entry {dict(data)!r}: {exc}") from exc


@dataclass(frozen=True)
class Manifest:
    """Everything about a package. ``runtimes[0]`` is the default way to run it."""

    name: str
    signature: Signature
    runtimes: tuple[RuntimeSpec, ...]
    files: tuple[FileEntry, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    conversion: Mapping[str, Any] = field(default_factory=dict)
    input_example: str | None = None
    reference_profile: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def runtime(self) -> RuntimeSpec:
        return self.runtimes[0]

    def runtime_spec(self, name: str) -> RuntimeSpec:
        for spec in self.runtimes:
            if spec.name == name:
                return spec
        have = [r.name for r in self.runtimes]
        raise PackageError(f"package {self.name!r} cannot run on runtime {name!r}; it has {have}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "signature": self.signature.to_dict(),
            "runtimes": [r.to_dict() for r in self.runtimes],
            "metadata": dict(self.metadata),
            "conversion": dict(self.conversion),
            "input_example": self.input_example,
            "reference_profile": self.reference_profile,
            "files": [f.to_dict() for f in self.files],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        if not isinstance(data, Mapping):
            raise ManifestError("manifest must be a JSON object")
        version = data.get("format_version")
        if version not in SUPPORTED_FORMAT_VERSIONS:
            raise UnsupportedFormatVersion(version, SUPPORTED_FORMAT_VERSIONS)
        try:
            runtimes = tuple(RuntimeSpec.from_dict(r) for r in data["runtimes"])
            files = tuple(FileEntry.from_dict(f) for f in data["files"])
            signature = Signature.from_dict(data["signature"])
            name = check_name(data["name"])
        except KeyError as exc:
            raise ManifestError(f"manifest is missing the field {exc.args[0]!r}") from exc
        except PackageError as exc:
            raise ManifestError(f"malformed manifest: {exc}") from exc
        if not runtimes:
            raise ManifestError("manifest lists no runtime")
        listed = {f.path for f in files}
        for rt in runtimes:
            unlisted = [f for f in rt.files if f not in listed]
            if unlisted:
                raise ManifestError(f"runtime {rt.name!r} reads files not in the manifest: "
                                    f"{unlisted}")
        named = {key: _optional_path(data.get(key))
                 for key in ("input_example", "reference_profile")}
        for key, path in named.items():  # read at load and by the monitor: verified too
            if path is not None and path not in listed:
                raise ManifestError(f"{key} {path!r} is not listed in the manifest's files")
        return cls(
            name=name, signature=signature, runtimes=runtimes, files=files,
            metadata=dict(data.get("metadata", {})), conversion=dict(data.get("conversion", {})),
            input_example=named["input_example"], reference_profile=named["reference_profile"],
            format_version=int(version),
        )

    @classmethod
    def read(cls, package_dir: Path) -> Manifest:
        path = package_dir / MANIFEST_FILE
        if not package_dir.is_dir():
            raise PackageError(f"{package_dir} is not a package directory")
        if not path.is_file():
            raise ManifestError(f"{package_dir} has no {MANIFEST_FILE}: not a shipyard package")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def _optional_path(value: object) -> str | None:
    return None if value is None else safe_relpath(str(value))
