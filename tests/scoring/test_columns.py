"""Arrow <-> numpy at the edges of a batch run: the zero-copy paths give the same values as
Arrow's own conversion (offsets, strided arrays, nulls, booleans), and the output file
dictionary-encodes only what is worth it, numbers split by byte or as deltas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.scoring.columns import arrow_column, to_numpy
from shipyard.scoring.publish import Destination
from shipyard.scoring.writers import ParquetOutput


@pytest.mark.parametrize("dtype", [pa.float64(), pa.float32(), pa.int64(), pa.int32(),
                                   pa.int8(), pa.uint16()])
def test_to_numpy_of_a_sliced_column_reads_its_own_rows(dtype: pa.DataType) -> None:
    whole = pa.array(np.arange(100), type=dtype)
    part = whole.slice(37, 20)  # a non-zero offset into the values buffer
    got = to_numpy(part)
    assert got.dtype == np.dtype(dtype.to_pandas_dtype())
    assert got.tolist() == list(range(37, 57))


def test_to_numpy_keeps_nulls_and_booleans_as_arrow_gives_them() -> None:
    floats = to_numpy(pa.array([1.5, None, 3.0]))
    assert floats[0] == 1.5 and np.isnan(floats[1]) and floats[2] == 3.0
    ints = to_numpy(pa.array([1, None, 3], type=pa.int64()))  # nulls: floats with NaN
    assert np.isnan(ints[1]) and ints[2] == 3
    flags = to_numpy(pa.array([True, False, True]).slice(1))  # bit-packed, offset 1
    assert flags.dtype == np.bool_ and flags.tolist() == [False, True]


def test_arrow_column_of_strided_and_2d_arrays() -> None:
    proba = np.arange(12, dtype=np.float64).reshape(6, 2)
    second = arrow_column(proba[:, 1])  # a strided view: copied, not misread
    assert second.type == pa.float64()
    assert second.to_pylist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]
    nested = arrow_column(np.arange(6, dtype=np.int32).reshape(3, 2))
    assert nested.type == pa.list_(pa.int32(), 2)
    assert nested.to_pylist() == [[0, 1], [2, 3], [4, 5]]
    assert arrow_column(np.array([True, False])).to_pylist() == [True, False]
    assert arrow_column(np.array(["a", None], dtype=object)).to_pylist() == ["a", None]


def test_arrow_column_outlives_the_array_it_wraps() -> None:
    column = arrow_column(np.linspace(0.0, 1.0, 5))
    del_me = [np.full(10_000, 7.0) for _ in range(20)]  # reuse freed memory, if any was
    assert column.to_pylist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert del_me[0][0] == 7.0


def test_output_dictionary_encodes_text_not_numbers(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    output = ParquetOutput(Destination.of(str(out), folder=False)).start()
    output.write(pa.table({"id": pa.array(["a", "b", "a"] * 100),
                           "prediction": pa.array([0, 1, 1] * 100),
                           "proba_1": pa.array(np.linspace(0, 1, 300))}))
    output.publish()
    meta = pq.ParquetFile(out).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: set(meta.column(i).encodings)
                 for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" in encodings["id"]
    assert "RLE_DICTIONARY" not in encodings["proba_1"]
    assert "RLE_DICTIONARY" not in encodings["prediction"]
    assert pq.read_table(out).column("proba_1").to_pylist()[-1] == 1.0


def test_output_numbers_are_split_by_byte_or_delta_encoded(tmp_path: Path) -> None:
    """Floats BYTE_STREAM_SPLIT, integers DELTA_BINARY_PACKED (smaller and cheaper to write
    than plain pages under zstd); every other type as before, values unchanged."""
    import datetime

    table = pa.table({
        "id": pa.array(range(300), type=pa.int64()), "small": pa.array([1, -2, 3] * 100,
                                                                      type=pa.int8()),
        "big": pa.array([2**63 + 5] * 300, type=pa.uint64()),
        "proba_1": pa.array(np.linspace(0, 1, 300)),
        "score": pa.array(np.linspace(0, 1, 300), type=pa.float32()),
        "flag": pa.array([True, None, False] * 100),
        "at": pa.array([datetime.datetime(2026, 1, 1)] * 300, type=pa.timestamp("us")),
        "amount": pa.array([None] * 300, type=pa.decimal128(10, 2)),
        "city": pa.array(["a", "b", None] * 100)})
    out = tmp_path / "out.parquet"
    output = ParquetOutput(Destination.of(str(out), folder=False)).start()
    output.write(table)
    output.publish()
    meta = pq.ParquetFile(out).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: set(meta.column(i).encodings)
                 for i in range(meta.num_columns)}
    for name in ("proba_1", "score"):
        assert "BYTE_STREAM_SPLIT" in encodings[name], encodings[name]
    for name in ("id", "small", "big"):
        assert "DELTA_BINARY_PACKED" in encodings[name], encodings[name]
    assert pq.read_table(out).equals(table)


def test_the_read_ahead_thread_stops_when_the_model_fails_to_load(tmp_path: Path) -> None:
    """Reading starts before the model loads (they overlap); a model that cannot load stops
    the reader too, mid-file, and the load's own error is what the caller sees."""
    import threading

    from shipyard.scoring.columns import InputPlan
    from shipyard.scoring.local import score_local
    from shipyard.stores.table_sources import Chunk

    read: list[int] = []

    def chunks() -> Iterator[Chunk]:
        for i in range(1000):
            read.append(i)
            yield Chunk(pa.record_batch({"x": [float(i)]}), first_row=i, read_bytes=8)

    class Broken:
        def load(self, *, threads: int | None = None) -> None:
            for _ in range(500):  # the reader is already at work while the model loads
                if len(read) >= 3:
                    raise RuntimeError("no model here")
                threading.Event().wait(0.01)
            raise AssertionError("nothing was read while the model loaded")

    with pytest.raises(RuntimeError, match="no model here"):
        list(score_local(chunks(), Broken(), cast(InputPlan, None), (),  # type: ignore[arg-type]
                         workers=2))
    assert not [t for t in threading.enumerate() if t.name == "shipyard-read"]
    assert len(read) < 1000
