"""The model package format: manifest, signature, integrity. Pure: no runtimes, no I/O beyond files.

Named ``packaging`` (not ``package``) so it never shadows the ``shipyard.package()`` function.
"""

from shipyard.packaging.integrity import FileEntry, describe_files, sha256_file, verify_files
from shipyard.packaging.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    Manifest,
    RuntimeSpec,
    check_name,
)
from shipyard.packaging.signature import ColumnSpec, OutputSpec, Signature
from shipyard.packaging.validation import prepare

__all__ = [
    "FORMAT_VERSION", "MANIFEST_FILE", "ColumnSpec", "FileEntry", "Manifest", "OutputSpec",
    "RuntimeSpec", "Signature", "check_name", "describe_files", "prepare", "sha256_file",
    "verify_files",
]
