"""Where batch input comes from: Parquet or CSV files, a folder of them, or a URL, read as a
stream of record batches (never the whole input at once).

Paths and URLs go through ``pyarrow.fs``: a local path, ``file://``, ``s3://`` (credentials and
endpoint from the standard AWS environment, ``AWS_ENDPOINT_URL`` included), ``gs://``,
``hdfs://``; any other scheme fsspec knows goes through fsspec.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from shipyard.errors import ShipyardError
from shipyard.stores.log_location import with_timeouts

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
LOCAL_READ_BUFFER = 64 << 10
CSV_SUFFIXES = (".csv",)


class InputError(ShipyardError):
    """The batch input cannot be found or read."""


def first_line(exc: BaseException) -> str:
    """An error's message, first line only (the AWS SDK's messages can run on)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``location`` (a path or URL) and the path within it."""
    if "://" not in location:
        from pathlib import Path

        return pafs.LocalFileSystem(), str(Path(location).expanduser().absolute())
    try:
        fs, path = pafs.FileSystem.from_uri(location)
        return with_timeouts(fs), path
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        import fsspec
        from pyarrow.fs import FSSpecHandler, PyFileSystem
    except ImportError as exc:
        raise InputError(f"no filesystem for {location!r}: pyarrow does not know its scheme "
                         "and fsspec is not installed (pip install 'shipyard-ml[s3]')") from exc
    fs_, path = fsspec.core.url_to_fs(location)
    return PyFileSystem(FSSpecHandler(fs_)), str(path)


@dataclass(frozen=True)
class InputFile:
    path: str
    format: str  # "parquet" or "csv"
    size: int  # bytes


@dataclass(frozen=True)
class Source:
    """The files of one input, in the order their rows are numbered (sorted by path)."""

    fs: pafs.FileSystem
    files: tuple[InputFile, ...]

    @property
    def format(self) -> str:
        return self.files[0].format

    def total_rows(self) -> int | None:
        """Rows of a Parquet input, from the files' footers; None for CSV."""
        if self.format != "parquet":
            return None
        total = 0
        for f in self.files:
            with self.fs.open_input_file(f.path) as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
        return total

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def schema(self) -> pa.Schema:
        """The first file's schema (CSV: inferred from its first block)."""
        first = self.files[0]
        if first.format == "parquet":
            with self.fs.open_input_file(first.path) as handle:
                return pq.ParquetFile(handle).schema_arrow
        with self.fs.open_input_stream(first.path) as stream:
            return pcsv.open_csv(stream).schema


def _format_of(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def _hidden(path: str, root: str) -> bool:
    """Names that start with ``.`` or ``_`` (temporary files, ``_SUCCESS`` markers): the
    same files ``pyarrow.dataset`` skips."""
    relative = path[len(root):].lstrip("/")
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def open_source(location: str) -> Source:
    """The input at ``location``: one Parquet or CSV file, or a folder holding them (one
    format; read recursively, hidden and ``_``-prefixed names skipped). An input that cannot
    be read (no access, a store that does not answer) is an ``InputError`` naming it."""
    try:
        return _open_source(location)
    except OSError as exc:
        raise InputError(f"cannot read input {location}: {first_line(exc)}") from None


def _open_source(location: str) -> Source:
    fs, path = filesystem(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"input {location!r} does not exist")
    if info.type == pafs.FileType.File:
        fmt = _format_of(path)
        if fmt is None:
            raise InputError(f"input {location!r} is neither .parquet nor .csv")
        return Source(fs, (InputFile(path, fmt, info.size or 0),))
    found = [i for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
             if i.type == pafs.FileType.File and not _hidden(i.path, path)]
    files = sorted((InputFile(i.path, fmt, i.size or 0) for i in found
                    if (fmt := _format_of(i.path)) is not None), key=lambda f: f.path)
    if not files:
        raise InputError(f"input folder {location!r} holds no .parquet or .csv files")
    formats = {f.format for f in files}
    if len(formats) > 1:
        raise InputError(f"input folder {location!r} mixes Parquet and CSV files; score "
                         "them separately")
    return Source(fs, tuple(files))


class _Counted:
    """A file object that counts the bytes read from it (CSV progress)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.read_bytes = 0
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.inner.read(size)
        self.read_bytes += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.inner.close()


@dataclass
class Chunk:
    """Up to ``batch_size`` input rows; ``first_row``: the input row number of the first
    (0-based, counted across the input's files in order); ``read_bytes``: the input's bytes
    read so far (CSV progress)."""

    batch: pa.RecordBatch
    first_row: int
    read_bytes: int


def read_chunks(source: Source, batch_size: int, *,
                columns: Sequence[str] | None = None,
                csv_strings: Sequence[str] = ()) -> Iterator[Chunk]:
    """The input's rows as record batches of at most ``batch_size`` rows, in order.

    ``columns``: read only these; ``csv_strings``: CSV columns read as text, so a
    value that is not a number stays visible and its row alone can be rejected."""
    row = 0
    done_bytes = 0
    threads = (os.cpu_count() or 1) > 2
    for f in source.files:
        for batch, read in read_part(source.fs, f, None, batch_size, columns=columns,
                                     csv_strings=csv_strings, threads=threads):
            yield Chunk(batch, row, done_bytes + read)
            row += batch.num_rows
        done_bytes += f.size


@dataclass(frozen=True)
class Part:
    """A piece of the input one worker reads on its own: a Parquet row group, or a whole
    CSV file (``row_group`` None). ``index``: its place in the input's order."""

    index: int
    file: InputFile
    row_group: int | None


def parts(source: Source) -> list[Part]:
    """The input's parts in order (a Parquet file's row groups from its footer)."""
    out: list[Part] = []
    for f in source.files:
        if f.format == "parquet":
            with source.fs.open_input_file(f.path) as handle:
                groups = pq.ParquetFile(handle).metadata.num_row_groups
            out.extend(Part(len(out) + g, f, g) for g in range(groups))
        else:
            out.append(Part(len(out), f, None))
    return out


def read_part(fs: pafs.FileSystem, f: InputFile, row_group: int | None, batch_size: int, *,
              columns: Sequence[str] | None = None, csv_strings: Sequence[str] = (),
              threads: bool = True) -> Iterator[tuple[pa.RecordBatch, int]]:
    """A file's rows (one row group of it: ``row_group``) as record batches, each with the
    file's bytes read so far (CSV progress; 0 for Parquet). ``threads``: a Parquet batch's
    columns decoded in parallel on Arrow's threads, else on the calling thread.

    Reading a local file in the calling thread, through a 64 KiB buffer rather than whole
    column chunks, is what the local engine does on two cores (where the scorers already use
    both, and Arrow's threads only added work): buffers freed on one thread and asked for
    on another were not reused, and the kernel zeroed fresh pages instead; on 1M rows of 30
    floats, 1.2 s against 1.4 s, peak RSS 295 MB against 345. With more cores, a cheap model
    can outrun one decoding thread."""
    if f.format == "parquet":
        with fs.open_input_file(f.path) as handle:
            # pre_buffer off: its read cache keeps every row group read until the file closes
            # (memory grew with the input: ~300 MB per million rows of 30 floats); an object
            # store is read a column chunk at a time (a request each), a local file buffered
            local = isinstance(fs, pafs.LocalFileSystem)
            reader = pq.ParquetFile(handle, pre_buffer=False,
                                    buffer_size=LOCAL_READ_BUFFER if local else 0)
            wanted = None if columns is None else [
                c for c in columns if c in reader.schema_arrow.names]
            groups = None if row_group is None else [row_group]
            batches = reader.iter_batches(batch_size=batch_size, columns=wanted,
                                          row_groups=groups, use_threads=threads)
            for batch in _reading(f.path, batches):
                yield batch, 0
        return
    with fs.open_input_stream(f.path) as stream:
        counted = _Counted(stream)
        reader = pcsv.open_csv(
            counted,
            read_options=pcsv.ReadOptions(block_size=_csv_block(batch_size)),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(csv_strings, pa.string()),
                strings_can_be_null=True,
                include_columns=None if columns is None else list(columns)))
        for batch in _reading(f.path, reader):
            for start in range(0, batch.num_rows, batch_size):
                yield batch.slice(start, batch_size), counted.read_bytes


def _reading(path: str, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``batches``; a file that turns out unreadable part-way (a corrupt page, a CSV row
    that does not parse, a connection lost) is an ``InputError`` naming it, not Arrow's
    bare error (the run publishes nothing, as for any failure)."""
    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"cannot read {path} to the end: {exc}") from exc
        yield batch


def _csv_block(batch_size: int) -> int:
    """A CSV block that holds about ``batch_size`` rows of a few dozen columns."""
    return max(1 << 20, min(batch_size * 256, 64 << 20))
