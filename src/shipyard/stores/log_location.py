"""Where a prediction log lives: a local directory (the fast path, as it always was) or an
object-store URL such as ``s3://bucket/logs`` (any scheme pyarrow's filesystems open: ``s3``,
``gs``, ``hdfs``, ``abfs``).

An object store has no rename, but it needs none: an object appears whole when its one
upload completes, so a segment written with ``write_object`` is never seen half written (the
local log writes a hidden temporary file and renames it instead). Credentials and endpoint
come only from the standard environment or files of the store's SDK (for S3:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` or ``~/.aws``, ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3`` for MinIO or another S3-compatible server, ``AWS_DEFAULT_REGION``);
a URL holding a password is refused, so no secret ever sits in a config file or a log line.

What stays on local disk whatever the log's location: inference processes' spools and
their segments until the server uploads them (``outbox``), and the monitor's history and
alert state (``local_state``), which need appends and file locks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shipyard.errors import ShipyardError

SEGMENT_SUFFIX = ".parquet"


class LogLocationError(ShipyardError):
    """A prediction-log location that cannot be used (a URL with a password in it, a bucket
    that does not exist)."""


def is_remote(root: str | Path) -> bool:
    """``root`` is an object-store URL (``file://`` and plain paths are local)."""
    text = str(root)
    return "://" in text and not text.startswith("file://")


def log_root(root: str | Path) -> str | Path:
    """``root`` as the log's code takes it: a ``Path`` for a local directory, the URL (no
    trailing ``/``) for an object store; a URL holding credentials is refused."""
    text = str(root)
    if not is_remote(text):
        return Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()
    parts = urlsplit(text)
    if parts.password is not None or parts.username is not None:
        raise LogLocationError(
            f"the prediction log URL {parts.scheme}://…@{parts.hostname}{parts.path} holds "
            "credentials: give them through the environment (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY) or the standard files (~/.aws/credentials) instead")
    return text.rstrip("/")


def join(root: str | Path, *parts: str) -> str | Path:
    """``root / part / …`` for a local root or a URL."""
    if isinstance(root, Path):
        return root.joinpath(*parts)
    return "/".join([str(root).rstrip("/"), *parts])


def _filesystem(uri: str, *, single_put: bool = False) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if single_put and uri.startswith("s3://") and "?" not in uri:
        # a small object goes up in one PutObject when the stream closes, not as a multipart
        # upload begun at open (which a failed write would leave behind, unfinished)
        uri += "?allow_delayed_open=true"
    fs, path = pafs.FileSystem.from_uri(uri)
    return with_timeouts(fs), str(path)


# An S3 server that accepts a connection and never answers held one upload 288 s with the
# SDK's defaults (so a server's shutdown, shipping its last log segments, waited minutes);
# with these it gives up after ~35 s of retries. The request timeout is curl's low-speed
# limit (no byte moved for that long), so a slow transfer that progresses is not cut.
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0


def with_timeouts(fs: Any) -> Any:
    """``fs`` with connect and request timeouts when it is pyarrow's S3 filesystem (its URI
    form takes none): rebuilt from its own options (region, endpoint, credentials as
    resolved), which its pickling support hands back."""
    import pyarrow.fs as pafs

    if not isinstance(fs, pafs.S3FileSystem):
        return fs
    rebuild, args = fs.__reduce__()
    options = dict(args[0])
    if options.get("request_timeout", -1) < 0:
        options["request_timeout"] = REQUEST_TIMEOUT_S
    if options.get("connect_timeout", -1) < 0:
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    return rebuild(options)


def missing_bucket(fs: Any, path: str) -> str | None:
    """The bucket of ``path`` (on object-store filesystem ``fs``) when it does not exist."""
    import pyarrow.fs as pafs

    bucket = path.split("/", 1)[0]
    return bucket if fs.get_file_info(bucket).type == pafs.FileType.NotFound else None


def check_bucket(folder: str) -> tuple[Any, str]:
    """``(filesystem, path)`` of ``folder`` (a URL); a ``LogLocationError`` if its bucket does
    not exist (a typo, not "nothing logged yet")."""
    fs, base = _filesystem(folder)
    bucket = missing_bucket(fs, base)
    if bucket is not None:
        scheme = folder.split("://", 1)[0]
        raise LogLocationError(f"the prediction log's bucket {scheme}://{bucket} does not exist "
                               f"(log directory {folder})")
    return fs, base


def list_objects(folder: str, suffix: str = SEGMENT_SUFFIX) -> list[str]:
    """The URLs of the objects under ``folder`` (a URL) whose names end in ``suffix`` and do
    not start with a dot, sorted; ``[]`` if there are none."""
    import pyarrow.fs as pafs

    scheme = folder.split("://", 1)[0]
    fs, base = check_bucket(folder)
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return sorted(f"{scheme}://{info.path}" for info in infos
                  if info.type == pafs.FileType.File and info.base_name.endswith(suffix)
                  and not info.base_name.startswith("."))


def write_object(uri: str, data: bytes) -> None:
    """Store ``data`` at ``uri`` in one upload: readers see all of it or nothing."""
    fs, path = _filesystem(uri, single_put=True)
    with fs.open_output_stream(path) as out:
        out.write(data)


def upload_file(source: Path, uri: str) -> None:
    """Copy a local file to ``uri`` (it appears whole when the upload completes)."""
    write_object(uri, source.read_bytes())


def readable(files: Sequence[str]) -> tuple[Any, list[str]]:
    """``(filesystem, paths)`` for pyarrow's readers: ``(None, files)`` for local paths; for
    URLs (all of one store) the store's filesystem, opened once, and the paths in it."""
    if not files or not is_remote(files[0]):
        return None, list(files)
    fs, _ = _filesystem(files[0])
    return fs, [f.split("://", 1)[1] for f in files]


def local_state(root: str | Path, home: Path) -> Path:
    """The local directory that keeps what a remote log cannot (see the module docstring):
    ``root`` itself when it is local, else one folder per URL under ``home``."""
    resolved = log_root(root)
    if isinstance(resolved, Path):
        return resolved
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    host = urlsplit(resolved).hostname or "store"
    return home / "remote-logs" / f"{host}-{digest}"

