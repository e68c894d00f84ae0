"""``shipyard loadtest``: realistic load on a served model (``shipyard/loadtest/``)."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from shipyard.cli.output import console, print_json
from shipyard.errors import ShipyardError


def loadtest(
    url: Annotated[str, typer.Argument(help="the predict URL, e.g. "
                                            "http://127.0.0.1:8000/v1/endpoints/iris/predict")],
    model: Annotated[str, typer.Option(help="the package or models:/ URI whose reference "
                                            "rows make the requests")],
    rate: Annotated[float | None, typer.Option(help="open loop: requests a second")] = None,
    concurrency: Annotated[int | None, typer.Option(help="closed loop: clients")] = None,
    duration: Annotated[str, typer.Option(help="how long (30s, 2m)")] = "30s",
    batch: Annotated[int, typer.Option(help="rows per request")] = 1,
    ramp: Annotated[str | None, typer.Option(
        help="open-loop steps at these rates, e.g. 100,200,400,800 (each --duration long)")]
    = None,
    target_p99: Annotated[float, typer.Option(
        "--target-p99", help="--ramp: the p99 latency (ms) a step must meet")] = 100.0,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="SHIPYARD_API_KEY", help="sent as Authorization: Bearer "
                                                     "(default $SHIPYARD_API_KEY)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Load a served model with rows from its reference sample: open loop at --rate
    (latency from each request's due time), closed loop with --concurrency, or --ramp to
    find the highest rate that meets --target-p99."""
    from shipyard.loadtest import closed_loop, open_loop, reference_bodies, run
    from shipyard.loadtest import ramp as run_ramp
    from shipyard.service.config import ConfigError, parse_duration

    if sum(x is not None for x in (rate, concurrency, ramp)) != 1:
        raise ShipyardError("give exactly one of --rate, --concurrency or --ramp")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ShipyardError(f"--rate must be a positive number of requests a second, not "
                            f"{rate:g}")
    if concurrency is not None and concurrency < 1:
        raise ShipyardError(f"--concurrency must be at least 1 client, not {concurrency}")
    if batch < 1:
        raise ShipyardError(f"--batch must be at least 1 row per request, not {batch}")
    try:
        seconds = parse_duration(duration, "--duration")
    except ConfigError as exc:
        raise ShipyardError(str(exc)) from None
    headers = {} if api_key is None else {"authorization": f"Bearer {api_key}"}
    bodies = reference_bodies(model, batch=batch)
    best = None
    if ramp is not None:
        try:
            rates = [float(r) for r in ramp.split(",") if r.strip()]
        except ValueError:
            raise ShipyardError(f"--ramp takes rates like 100,200,400, not {ramp!r}") from None
        if not rates or any(not (math.isfinite(r) and r > 0) for r in rates):
            raise ShipyardError(f"--ramp needs positive rates, not {ramp!r}")
        steps, best = run(run_ramp(url, bodies, rates, seconds, target_p99,
                                           headers=headers))
    elif rate is not None:
        steps = [run(open_loop(url, bodies, rate, seconds, headers=headers))]
    else:
        assert concurrency is not None
        steps = [run(closed_loop(url, bodies, concurrency, seconds, headers=headers))]
    if as_json:
        print_json({"steps": [s.to_dict() for s in steps],
                    **({"best_rate": best} if ramp is not None else {})})
        return
    # no borders, three significant digits: the ten columns fit 80 characters whole
    shown = Table(title=f"load on {url} (asked: rate/s or clients; latency in ms)",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("mode", "asked", "rate/s", "ok", "errors", "dropped", "p50", "p99", "p99.9",
                 "max"):
        shown.add_column(name, no_wrap=True, justify="left" if name == "mode" else "right")
    for s in steps:
        shown.add_row(s.mode, f"{s.target:g}", _short(s.achieved_rate), str(s.ok),
                      str(s.errors), str(s.dropped),
                      *(_short(s.latency_ms.get(k, float("nan"))) for k in ("p50", "p99",
                                                                            "p99.9", "max")))
    console.print(shown)
    for s in steps:
        bad = {k: v for k, v in s.statuses.items() if k != "200"}
        if bad:
            console.print(f"[yellow]{s.mode} {s.target:g}: not 200: {bad}[/]")
    if ramp is not None:
        console.print(f"highest rate meeting p99 <= {target_p99:g} ms: "
                      f"{'none' if best is None else f'{best:g}/s'}")


def _short(value: float) -> str:
    """Three significant digits (0.97, 34.7, 172), whole numbers from 1,000 (2686)."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
