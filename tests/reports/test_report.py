"""``shipyard report``: one standalone file (nothing outside it is loaded), its embedded data
equal to ``--format json`` and to what the monitor computes, and small at 1,000 features."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitoring.test_monitor_service import ENDPOINT, HOUR, Traffic, save_reference
from shipyard.cli.main import app
from shipyard.errors import ShipyardError
from shipyard.monitoring import compare
from shipyard.reports import dataset_report, render_html
from shipyard.service.monitor_analysis import compact_drift

runner = CliRunner()
VOLATILE = ("generated_at",)  # differs between two runs of the same report


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def embedded(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="shipyard-report">(.*?)</script>',
                      html, re.S)
    assert found is not None, "no embedded report data"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def assert_standalone(html: str) -> None:
    """Nothing the page loads lives outside it: no external URL in an attribute or CSS, no
    script that runs, no stylesheet link, no iframe or object."""
    assert not re.search(r'(?:src|href|action|xlink:href)\s*=\s*["\']?\s*(?:https?:|//)',
                         html, re.I)
    assert not re.search(r"url\s*\(|@import", html, re.I)
    assert not re.search(r"<(?:link|iframe|object|embed|img)\b", html, re.I)
    scripts = re.findall(r"<script\b[^>]*>", html, re.I)
    assert scripts == ['<script type="application/json" id="shipyard-report">']


def _frames(rows: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"age": rng.normal(40, 10, rows),
                        "visits": rng.poisson(3, rows).astype(float),
                        "city": rng.choice(["lisbon", "porto", "faro"], rows),
                        "member": rng.integers(0, 2, rows)})
    cur = pd.DataFrame({"age": rng.normal(46, 10, rows),
                        "visits": rng.poisson(3, rows).astype(float),
                        "city": rng.choice(["lisbon", "porto", "faro", "braga"], rows),
                        "member": rng.integers(0, 2, rows)})
    cur.loc[:299, "visits"] = np.nan
    return ref, cur


def test_dataset_report_is_standalone_and_says_what_compare_says(tmp_path: Path) -> None:
    ref, cur = _frames()
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    code, out = _cli("report", "--reference", str(tmp_path / "ref.parquet"), "--current",
                     str(tmp_path / "cur.csv"), "-o", str(tmp_path / "r.html"))
    assert code == 0, out
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert_standalone(html)
    data = embedded(html)
    code, out = _cli("report", "--reference", str(tmp_path / "ref.parquet"), "--current",
                     str(tmp_path / "cur.csv"), "--format", "json")
    assert code == 0, out
    as_json = json.loads(out)
    for key in VOLATILE:
        data.pop(key), as_json.pop(key)
    assert data == as_json
    # the drift section is compare()'s own result, as the monitor stores it
    expected = compact_drift(compare(ref, pd.read_csv(tmp_path / "cur.csv")).to_dict())
    assert data["drift"] == json.loads(json.dumps(expected))
    assert set(data["drift"]["drifted_columns"]) == {"age", "city"}
    # the summaries show the shift, the new category and the missing values
    age = data["features"]["age"]
    assert sum(age["histogram"]["reference"]) == pytest.approx(1, abs=1e-3)
    assert age["quantiles"]["current"][2] > age["quantiles"]["reference"][2] + 4
    city = data["features"]["city"]["categories"]
    assert city["new"] == ["braga"] and 0.2 < city["new_share"] < 0.3
    assert data["features"]["visits"]["missing"] == {"reference": 0.0, "current": 0.1}
    # the page shows them: drifted features first, each chart with a text alternative
    order = re.findall(r'<a href="#f-\d+">([^<]+)</a>', html)
    assert order[:2] == ["age", "city"] or order[:2] == ["city", "age"]
    assert html.count('role="img"') == 4 and "braga" in html
    assert re.search(r'<details id="f-\d+" open><summary>age &mdash; drifted', html)


def test_bad_arguments_are_one_clear_line(tmp_path: Path) -> None:
    ref, _ = _frames(50)
    ref.to_parquet(tmp_path / "ref.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    cases = [
        (["--reference", str(tmp_path / "ref.parquet"), "--current",
          str(tmp_path / "missing.csv"), "-o", "x.html"], "does not exist"),
        (["--reference", str(tmp_path / "ref.parquet"), "--current",
          str(tmp_path / "junk.parquet"), "-o", "x.html"], "cannot read"),
        (["--reference", str(tmp_path / "ref.parquet"), "--current",
          str(tmp_path / "ref.parquet")], "needs --output"),
        (["--format", "pdf"], "html or json"),
        (["-o", "x.html"], "name an ENDPOINT"),
    ]
    for args, message in cases:
        with pytest.raises(ShipyardError, match=message):
            _cli("report", *args)
    assert not (Path.cwd() / "x.html").exists()


def test_a_thousand_features_fit_in_5_mb(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = 1500
    ref: dict[str, Any] = {f"n{i}": rng.normal(size=rows) for i in range(800)}
    cur: dict[str, Any] = {f"n{i}": rng.normal(0.3 if i % 10 == 0 else 0.0, size=rows)
                           for i in range(800)}
    words = np.array([f"category-{k:03d}" for k in range(40)])
    for i in range(200):
        ref[f"c{i}"] = rng.choice(words, rows)
        cur[f"c{i}"] = rng.choice(words, rows)
    report = dataset_report(pd.DataFrame(ref), pd.DataFrame(cur))
    html = render_html(report)
    assert len(report["features"]) == 1000
    assert html.count('role="img"') == 1000
    assert len(html.encode()) < 5 * 2**20, f"{len(html.encode()) / 2**20:.2f} MiB"
    assert_standalone(html)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """Two hours of traffic ending at the last complete hour: normal, then drifted."""
    root = tmp_path_factory.mktemp("report")
    reference = save_reference(root / "reference.profile")
    traffic = Traffic(root / "logs")
    end = time.time() // HOUR * HOUR
    traffic.send(end - 2 * HOUR, HOUR, 30, feedback=True)
    traffic.send(end - HOUR, HOUR, 30, feedback=True, shift=1.0)
    return root / "logs", reference, end


def test_endpoint_report_equals_the_monitors_record(logged: tuple[Path, Path, float],
                                                    tmp_path: Path) -> None:
    log_dir, reference, end = logged
    code, out = _cli("monitor", "run", ENDPOINT, "--log-dir", str(log_dir), "--reference",
                     str(reference), "--window", "1h", "--since", "3h", "--json")
    assert code == 0, out
    windows = {w["window"]["end_ts"]: w for w in json.loads(out)["windows"]}
    stored = windows[end]  # the drifted hour, as the monitor computed and stored it
    since, until = (time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
                    for t in (end - HOUR, end))
    code, out = _cli("report", ENDPOINT, "--log-dir", str(log_dir), "--reference",
                     str(reference), "--since", since, "--until", until, "-o",
                     str(tmp_path / "ep.html"))
    assert code == 0, out
    html = (tmp_path / "ep.html").read_text(encoding="utf-8")
    assert_standalone(html)
    data = embedded(html)
    record = data["monitor"]
    for key in ("drift", "output_drift", "quality", "outliers", "performance", "metrics",
                "rows", "requests", "labelled", "key", "window"):
        assert record.get(key) == stored.get(key), key
    assert data["drift"] == stored["drift"] and "x0" in data["drift"]["drifted_columns"]
    assert data["rows"]["current"] == 600
    assert [p["end_ts"] for p in data["timeline"]] == [end]
    assert data["timeline"][0]["drift_share"] == stored["metrics"]["drift_share"]
    assert "x0" in data["features"] and "histogram" in data["features"]["x0"]
    assert "Data quality" in html and "Performance" in html and "Alerts" in html


def test_non_finite_numbers_are_strict_json(tmp_path: Path) -> None:
    """A column of one repeated value (zero spread) and one all-missing column: the report is
    still strict JSON (no NaN), and the page renders."""
    ref, cur = _frames(400)
    ref["flat"] = 1.0
    cur["flat"] = 1.0
    ref["empty"] = np.nan
    cur["empty"] = np.nan
    report = dataset_report(ref, cur)
    text = json.dumps(report, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text)["features"]["flat"]["histogram"]["reference"][-1] is not None
    assert_standalone(render_html(report))


HOSTILE = '<!--<script>alert(1)</script>"\'&\n</script><!-- <zz>x</zz>'


def test_hostile_names_and_values_stay_data(tmp_path: Path) -> None:
    """Column names and categories holding markup: escaped in every table, chart and label,
    and the embedded JSON neither ends its element early nor (``<!--`` then ``<script``)
    swallows the element's own ``</script>``: no ``<`` at all inside it."""
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({HOSTILE: rng.normal(size=200),
                        "city": rng.choice([HOSTILE, "porto", "a&b"], 200)})
    cur = pd.DataFrame({HOSTILE: rng.normal(1, 1, size=200),
                        "city": rng.choice([HOSTILE, "<yy>new</yy>", "a&b"], 200)})
    report = dataset_report(ref, cur, title=HOSTILE)
    html = render_html(report)
    assert_standalone(html)
    block = html.split('id="shipyard-report">', 1)[1].rsplit("</script>", 1)[0]
    assert "<" not in block and ">" not in block
    assert json.loads(block) == json.loads(json.dumps(report))
    body = html.split("<script", 1)[0]
    assert "<zz>" not in body and "<yy>" not in body and "<!--" not in body


def test_unwritable_output_is_one_clear_line(tmp_path: Path) -> None:
    ref, cur = _frames(50)
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    data = ["--reference", str(tmp_path / "ref.parquet"), "--current",
            str(tmp_path / "cur.parquet")]
    for target in (tmp_path / "adir", tmp_path / "afile" / "r.html"):
        with pytest.raises(ShipyardError, match="cannot write the report"):
            _cli("report", *data, "-o", str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adir", "afile", "cur.parquet", "ref.parquet"]  # no temporary file left behind
    assert not any((tmp_path / "adir").iterdir())


def test_columns_a_profile_cannot_hold_are_one_clear_line(tmp_path: Path) -> None:
    """Repeated CSV header names, nested Parquet columns, lists in a DataFrame: an error
    naming the column, not a KeyError or TypeError traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "dup.csv").write_text("a,a\n1,2\n3,4\n")
    pq.write_table(pa.table({"x": [1.0, 2.0] * 10, "tags": [[1, 2], [3]] * 10}),
                   tmp_path / "list.parquet")
    pq.write_table(pa.table({"x": [1.0, 2.0] * 10, "s": [{"k": 1}, {"k": 2}] * 10}),
                   tmp_path / "struct.parquet")
    for name, message in (("dup.csv", "repeats column names"), ("list.parquet", "'tags'"),
                          ("struct.parquet", "'s'")):
        path = str(tmp_path / name)
        with pytest.raises(ShipyardError, match=message):
            _cli("report", "--reference", path, "--current", path, "--format", "json")
    frame = pd.DataFrame({"x": [1.0, 2.0] * 10, "tags": [[1, 2], [3]] * 10})
    with pytest.raises(ShipyardError, match="'tags'"):
        dataset_report(frame, frame)
    mixed = pd.DataFrame({"x": [1.0, 2.0] * 10, "m": ["a", 3, None, {"k": 1}] * 5})
    with pytest.raises(ShipyardError, match="'m' holds values that are not numbers"):
        dataset_report(frame[["x"]].assign(m="a"), mixed)  # a dict after text and numbers


def test_periods_beyond_the_calendar(logged: tuple[Path, Path, float]) -> None:
    """A naive time the local zone cannot place is a bad --since; a window longer than the
    epoch reaches back to 1970 instead of failing on the year."""
    log_dir, reference, _ = logged
    endpoint = [ENDPOINT, "--log-dir", str(log_dir), "--reference", str(reference),
                "--format", "json"]
    with pytest.raises(ShipyardError, match="ISO 8601"):
        _cli("report", *endpoint, "--since", "0001-01-01T00:00")
    code, out = _cli("report", *endpoint, "--window", "99999999999d")
    assert code == 0, out
    assert json.loads(out)["subject"]["since"].startswith("1970-01-01")
    assert json.loads(out)["rows"]["current"] == 1200


def test_an_unreadable_reference_dataset_is_one_clear_line(
        logged: tuple[Path, Path, float], tmp_path: Path) -> None:
    log_dir, _, _ = logged
    (tmp_path / "junk.parquet").write_text("not parquet")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2,3\n")
    for name, kind in (("junk.parquet", "Parquet"), ("ragged.csv", "CSV")):
        with pytest.raises(ShipyardError, match=f"cannot read reference .* as {kind}"):
            _cli("report", ENDPOINT, "--log-dir", str(log_dir), "--reference",
                 str(tmp_path / name), "--format", "json")


def test_a_period_with_no_rows_says_so(logged: tuple[Path, Path, float]) -> None:
    """No rows logged in the period: the page says it was not analysed, and the reference's
    row count (never loaded) shows as unknown, not as 0 rows."""
    log_dir, reference, end = logged
    since, until = (time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
                    for t in (end - 10 * HOUR, end - 8 * HOUR))
    code, out = _cli("report", ENDPOINT, "--log-dir", str(log_dir), "--reference",
                     str(reference), "--since", since, "--until", until, "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert data["rows"] == {"reference": None, "current": 0}
    html = render_html(data)
    assert_standalone(html)
    assert "Not analysed:</b> no rows" in html
    assert "rows (reference)<b>n/a</b>" in html


def test_long_text_values_do_not_grow_the_page() -> None:
    """A free-text column (every value 20,000 characters): the page names its categories
    shortened, so its size stays that of one feature, not of the values."""
    rng = np.random.default_rng(9)
    texts = ["".join(rng.choice(list("abcdef"), 20_000)) for _ in range(60)]
    ref = pd.DataFrame({"x": rng.normal(size=60), "comment": texts[:30] * 2})
    cur = pd.DataFrame({"x": rng.normal(size=60), "comment": texts[30:] * 2})
    report = dataset_report(ref, cur)
    html = render_html(report)
    cats = report["features"]["comment"]["categories"]
    assert cats["new_count"] == 30 and len(cats["new"]) == 10
    assert all(len(label) <= 200 for label in [*cats["labels"], *cats["new"]])
    assert len(html.encode()) < 100_000, len(html.encode())
    assert_standalone(html)


def test_every_drift_table_link_has_its_section() -> None:
    """A feature tested but without a summary (here: its summaries dropped) is named in the
    table without a link; every link there is has a section with that id."""
    ref, cur = _frames(300)
    report = dataset_report(ref, cur)
    del report["features"]["city"]
    html = render_html(report)
    links = set(re.findall(r'href="#(f-\d+)"', html))
    sections = set(re.findall(r'<details id="(f-\d+)"', html))
    assert links and links <= sections
    assert "<td>city</td>" in html
