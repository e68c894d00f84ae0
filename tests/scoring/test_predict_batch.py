"""``predict_batch`` on Parquet, CSV and folders: output equals ``shipyard.load().predict`` on
the good rows, bad rows go to the rejects file with their row number and reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import shipyard
from scoring.conftest import BAD_ROWS, customers_with_ids, expected, with_bad_rows
from shipyard.scoring import BatchSummary, RejectLimitError, predict_batch
from shipyard.stores.table_sources import InputError


def _rejects(summary: BatchSummary) -> pd.DataFrame:
    assert summary.rejects is not None
    return pq.read_table(summary.rejects).to_pandas()


def _check_rejects(summary: BatchSummary, data: pd.DataFrame) -> None:
    rejects = _rejects(summary)
    assert rejects["row"].tolist() == sorted(BAD_ROWS)
    assert rejects["reason"].tolist() == [BAD_ROWS[r][2] for r in sorted(BAD_ROWS)]
    assert rejects["id"].tolist() == data["id"].iloc[sorted(BAD_ROWS)].tolist()


def test_parquet_equals_load_predict_and_rejects_are_exact(package_dir: Path,
                                                           tmp_path: Path) -> None:
    data = with_bad_rows(customers_with_ids(3000))
    data.to_parquet(tmp_path / "in.parquet")
    summary = predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "out.parquet",
                            passthrough=["id"], batch_size=500, workers=2, progress=False)
    good = data.drop(index=list(BAD_ROWS))
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    pd.testing.assert_frame_equal(out, expected(package_dir, good, ["id"]), check_exact=True)
    assert (summary.rows, summary.scored, summary.rejected) == (3000, 2996, 4)
    _check_rejects(summary, data)
    assert summary.rejects == str(tmp_path / "out.rejects.parquet")


def test_csv_input_rejects_text_in_a_number_column(package_dir: Path, tmp_path: Path) -> None:
    data = with_bad_rows(customers_with_ids(2500)).astype({"income": object})
    data.loc[1234, "income"] = "n/a?"
    data.to_csv(tmp_path / "in.csv", index=False)
    summary = predict_batch(package_dir, tmp_path / "in.csv", tmp_path / "out.parquet",
                            passthrough=["id"], batch_size=300, workers=1, progress=False)
    rejects = _rejects(summary)
    assert rejects["row"].tolist() == sorted([*BAD_ROWS, 1234])
    assert rejects.set_index("row").loc[1234, "reason"] == \
        "income: expected float64, got values of type str"
    good = pd.read_csv(tmp_path / "in.csv").drop(index=[*BAD_ROWS, 1234])
    good["income"] = good["income"].astype("float64")  # the text made pandas read strings
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    pd.testing.assert_frame_equal(out, expected(package_dir, good, ["id"]), check_exact=True)


def test_folder_in_folder_out_numbers_rows_across_files(package_dir: Path,
                                                        tmp_path: Path) -> None:
    data = with_bad_rows(customers_with_ids(2400))
    folder = tmp_path / "in"
    folder.mkdir()
    for i, start in enumerate(range(0, 2400, 800)):  # rows 0-799, 800-1599, 1600-2399
        data.iloc[start:start + 800].to_parquet(folder / f"part-{i}.parquet")
    (folder / "_SUCCESS").write_text("")
    data.iloc[:5].to_parquet(folder / ".hidden.parquet")  # skipped, like pyarrow.dataset
    summary = predict_batch(package_dir, folder, tmp_path / "out", passthrough=["id"],
                            batch_size=256, workers=2, progress=False)
    assert summary.rows == 2400
    _check_rejects(summary, data)
    assert (tmp_path / "out").is_dir()
    out = pq.read_table(tmp_path / "out").to_pandas()
    good = data.drop(index=list(BAD_ROWS))
    pd.testing.assert_frame_equal(out, expected(package_dir, good, ["id"]), check_exact=True)


def test_passthrough_columns_keep_their_order_and_types(package_dir: Path,
                                                        tmp_path: Path) -> None:
    data = customers_with_ids(700)
    data["batch"] = pd.Categorical(np.where(data["id"] % 2 == 0, "even", "odd"))
    data.to_parquet(tmp_path / "in.parquet")
    predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "out.parquet",
                  passthrough=["batch", "city", "id"], workers=1, progress=False)
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert list(out.columns) == ["batch", "city", "id", "prediction", "proba_0", "proba_1",
                                 "proba_2"]
    assert out["id"].tolist() == data["id"].tolist()
    assert out["city"].tolist() == data["city"].tolist()


def test_max_rejects_fails_and_publishes_nothing(package_dir: Path, tmp_path: Path) -> None:
    data = with_bad_rows(customers_with_ids(2400))  # 4 of 2400 rows bad: 0.17%
    data.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(RejectLimitError, match="4 of 2400 rows"):
        predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "out.parquet",
                      passthrough=["id"], max_rejects=0.001, progress=False)
    assert not (tmp_path / "out.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.rejects.parquet"]
    assert pq.read_table(tmp_path / "out.rejects.parquet").num_rows == 4
    summary = predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "out.parquet",
                            passthrough=["id"], max_rejects=0.01, progress=False)
    assert summary.scored == 2396 and (tmp_path / "out.parquet").is_file()


def test_no_rejects_no_rejects_file_unless_asked(package_dir: Path, tmp_path: Path) -> None:
    customers_with_ids(300).to_parquet(tmp_path / "in.parquet")
    summary = predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "out.parquet",
                            progress=False)
    assert summary.rejects is None and not (tmp_path / "out.rejects.parquet").exists()
    asked = tmp_path / "bad" / "rows.parquet"
    summary = predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "out.parquet",
                            rejects=asked, progress=False)
    assert summary.rejects == str(asked) and pq.read_table(asked).num_rows == 0


def test_a_tensor_model_takes_feature_columns(tensor_package: tuple[Path, np.ndarray],
                                              tmp_path: Path) -> None:
    path, x = tensor_package
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame.insert(0, "key", [f"k{i}" for i in range(len(frame))])
    frame.to_parquet(tmp_path / "in.parquet")
    predict_batch(path, tmp_path / "in.parquet", tmp_path / "out.parquet", passthrough=["key"],
                  batch_size=1000, workers=2, progress=False)
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    want = shipyard.load(path).predict(x)
    assert out["key"].tolist() == frame["key"].tolist()
    assert np.array_equal(out["prediction"].to_numpy(), want.predictions)
    assert want.probabilities is not None
    assert np.array_equal(out[["proba_0", "proba_1"]].to_numpy(), want.probabilities)


def test_processes_give_the_same_output_as_threads(package_dir: Path, tmp_path: Path) -> None:
    with_bad_rows(customers_with_ids(2100)).to_parquet(tmp_path / "in.parquet")
    runs = {}
    for parallel in ("threads", "processes"):
        out = tmp_path / f"{parallel}.parquet"
        predict_batch(package_dir, tmp_path / "in.parquet", out, passthrough=["id"],
                      batch_size=400, workers=2, parallel=parallel, progress=False)
        runs[parallel] = pq.read_table(out)
    assert runs["threads"].equals(runs["processes"])


def test_clear_errors_for_inputs_that_cannot_be_scored(package_dir: Path,
                                                       tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        predict_batch(package_dir, tmp_path / "nothing.parquet", tmp_path / "o.parquet")
    customers_with_ids(10).drop(columns="city").to_parquet(tmp_path / "in.parquet")
    with pytest.raises(InputError, match=r"lacks the model's columns \['city'\]"):
        predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "o.parquet")
    with pytest.raises(InputError, match="passthrough columns"):
        predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "o.parquet",
                      passthrough=["nope"])
    assert not (tmp_path / "o.parquet").exists()


def test_max_rejects_of_a_csv_is_the_share_of_all_rows(package_dir: Path,
                                                       tmp_path: Path) -> None:
    """A CSV's row count is known only at the end: two bad rows in the first 300 (0.7%)
    do not fail a run whose rejects are 4 of 2500 rows (0.16%) under --max-rejects 0.5%."""
    with_bad_rows(customers_with_ids(2500)).to_csv(tmp_path / "in.csv", index=False)
    summary = predict_batch(package_dir, tmp_path / "in.csv", tmp_path / "out.parquet",
                            batch_size=300, max_rejects=0.005, workers=1, progress=False)
    assert (summary.rows, summary.rejected) == (2500, 4)
    with pytest.raises(RejectLimitError, match="4 of 2500 rows"):
        predict_batch(package_dir, tmp_path / "in.csv", tmp_path / "again.parquet",
                      batch_size=300, max_rejects=0.001, workers=1, progress=False)
    assert not (tmp_path / "again.parquet").exists()


def test_decimal_columns_are_read_as_numbers(package_dir: Path, tmp_path: Path) -> None:
    import decimal

    import pyarrow as pa

    data = customers_with_ids(200)
    table = pa.Table.from_pandas(data, preserve_index=False)
    cents = pa.array([decimal.Decimal(f"{v:.2f}") for v in data["income"]], pa.decimal128(9, 2))
    table = table.set_column(table.schema.get_field_index("income"), "income", cents)
    pq.write_table(table, tmp_path / "in.parquet")
    summary = predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "out.parquet",
                            passthrough=["id"], progress=False)
    assert summary.rejected == 0
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    pd.testing.assert_frame_equal(out, expected(package_dir, data, ["id"]))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_corrupt_part_way_is_an_input_error_and_publishes_nothing(
        package_dir: Path, tmp_path: Path, workers: int) -> None:
    """The footer is fine (the run starts and scores the first row groups); a row group in
    the middle is garbage: the run fails with an InputError naming the file, and neither the
    output nor a staging file is left behind."""
    source = tmp_path / "in.parquet"
    customers_with_ids(3000).to_parquet(source, row_group_size=500)
    meta = pq.ParquetFile(source).metadata
    assert meta.num_row_groups == 6
    chunk = meta.row_group(3).column(1)
    raw = bytearray(source.read_bytes())
    start = chunk.data_page_offset
    raw[start:start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    source.write_bytes(bytes(raw))
    out = tmp_path / "out.parquet"
    with pytest.raises(InputError, match=r"cannot read .*in\.parquet to the end"):
        predict_batch(package_dir, source, out, passthrough=["id"], batch_size=500,
                      workers=workers, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_a_publish_that_fails_leaves_no_staging(package_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing can fail after scoring (here: the rename onto the destination); the run
    fails with an OutputError and its staged output is removed, not left for a later run."""
    from shipyard.scoring.publish import Destination, OutputError

    customers_with_ids(100).to_parquet(tmp_path / "in.parquet")

    def refused(self: Destination) -> None:
        with self.writing():
            raise PermissionError(13, "Permission denied", self.path)

    monkeypatch.setattr(Destination, "_publish_local", refused)
    with pytest.raises(OutputError, match="Permission denied"):
        predict_batch(package_dir, tmp_path / "in.parquet", tmp_path / "out.parquet",
                      progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]
