"""``shipyard loadtest`` (issue 18) against a live server on 127.0.0.1: rows from the
package's reference sample, open loop at a fixed rate (every request sent, answered and
timed from its due time), closed loop, a ramp, and errors counted by status."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from server.helpers import live_server
from shipyard.cli.app import app
from shipyard.loadtest import closed_loop, open_loop, ramp, reference_bodies


def test_loadtest_against_a_live_server(packages: Any, tmp_path: Path) -> None:
    bodies = reference_bodies(str(packages.iris))
    rows = [json.loads(b)["instances"][0] for b in bodies]
    assert len(bodies) > 100 and len({json.dumps(r, sort_keys=True) for r in rows}) > 50
    assert set(rows[0]) == set(packages.iris_x.columns)  # realistic rows, not one example
    with live_server(tmp_path, packages.iris) as server:
        url = f"{server.url}/v1/endpoints/iris/predict"
        opened = asyncio.run(open_loop(url, bodies, rate=40, duration_s=2.0))
        assert opened.sent == 80 and opened.statuses == {"200": 80} and opened.dropped == 0
        p = opened.latency_ms
        assert 0 < p["p50"] <= p["p90"] <= p["p99"] <= p["p99.9"] <= p["max"]
        closed = asyncio.run(closed_loop(url, bodies, concurrency=3, duration_s=1.0))
        assert closed.ok == closed.sent > 3 and closed.errors == 0
        steps, best = asyncio.run(ramp(url, bodies, [10, 20], 1.0, target_p99_ms=60_000))
        assert [s.target for s in steps] == [10, 20] and best == 20
        missing = asyncio.run(open_loop(f"{server.url}/v1/endpoints/nope/predict", bodies,
                                        rate=20, duration_s=0.5))
        assert missing.statuses == {"404": 10} and missing.ok == 0
        shown = CliRunner().invoke(app, ["loadtest", url, "--model", str(packages.iris),
                                         "--rate", "20", "--duration", "1s", "--json"])
        assert shown.exit_code == 0, shown.output
        (step,) = json.loads(shown.output)["steps"]
        assert (step["sent"], step["ok"], step["errors"]) == (20, 20, 0)
        plain = CliRunner().invoke(app, ["loadtest", url, "--model", str(packages.iris),
                                         "--concurrency", "2", "--duration", "1s"],
                                   env={"COLUMNS": "80"})
        assert plain.exit_code == 0, plain.output
        assert "…" not in plain.output, plain.output  # every number and header shown whole
        assert "p99.9" in plain.output and "closed" in plain.output
    gone = asyncio.run(open_loop(url, bodies, rate=20, duration_s=0.25))
    assert gone.statuses == {"connect error": 5}
    bad = CliRunner().invoke(app, ["loadtest", url, "--model", str(packages.iris)])
    assert bad.exit_code != 0 and "exactly one of" in str(bad.exception)


def test_a_tensor_package_sends_its_stored_reference_rows(packages: Any) -> None:
    bodies = reference_bodies(str(packages.cancer), batch=2)
    rows = [row for body in bodies for row in json.loads(body)["instances"]]
    known = {tuple(r) for r in packages.cancer_x.tolist()}  # float32 rows, exact as floats
    assert len(bodies) > 100 and all(len(r) == packages.cancer_x.shape[1] for r in rows)
    assert all(tuple(r) in known for r in rows)
    assert len({tuple(r) for r in rows}) > 100  # many rows, not one repeated example
