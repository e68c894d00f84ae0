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
from shipyard.errors import ShipyardError
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


def test_a_rate_far_beyond_the_generator_drops_at_once_and_ends_on_time() -> None:
    """At a rate no client can send, the requests past MAX_IN_FLIGHT outstanding are counted
    as dropped without one loop turn each: the step ends about when it should (it spun
    through every due request, 500 million here, for minutes)."""
    import socket
    import time

    from shipyard.loadtest.steps import MAX_IN_FLIGHT

    with socket.socket() as closed:  # a port nothing listens on: each request fails at once
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1/endpoints/iris/predict"
    started = time.perf_counter()
    result = asyncio.run(open_loop(url, [b'{"instances": [[1.0]]}'], rate=1e9,
                                   duration_s=0.5, timeout_s=1.0))
    took = time.perf_counter() - started
    assert took < 10, took
    assert result.ok == 0 and result.sent >= MAX_IN_FLIGHT
    assert result.sent + result.dropped == 500_000_000 and result.dropped > 400_000_000


def test_rates_and_clients_that_are_not_positive_numbers_are_named(packages: Any) -> None:
    for option, value in (("--rate", "0"), ("--rate", "-5"), ("--rate", "nan"),
                          ("--rate", "inf"), ("--concurrency", "0"), ("--ramp", "100,inf")):
        shown = CliRunner().invoke(app, ["loadtest", "http://127.0.0.1:9/x", "--model",
                                         str(packages.iris), option, value])
        assert isinstance(shown.exception, ShipyardError), (option, value, shown.exception)
        assert option in str(shown.exception), str(shown.exception)
