"""``shipyard deploy``, ``shipyard rollout ...`` and ``shipyard rollback``: deployments and
their rollouts in the registry (``Registry.rollouts``); servers apply the result within one
poll interval. Each command parses its options into a plan and delegates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli.output import console, print_json

if TYPE_CHECKING:  # the registry (SQLAlchemy, Alembic) loads only when a command runs
    from shipyard.registry import Registry

app = typer.Typer(no_args_is_help=True,
                  help="Roll a new model version out: canary, A/B test, shadow, blue-green.")

Endpoint = Annotated[str, typer.Argument(help="endpoint name")]
RegistryOpt = Annotated[str | None, typer.Option(
    "--registry", help="registry database URL (default: $SHIPYARD_REGISTRY_URL)",
    envvar="SHIPYARD_REGISTRY_URL", show_envvar=False)]
ReasonOpt = Annotated[str | None, typer.Option(help="why (kept in the history and audit log)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
IntervalOpt = Annotated[str | None, typer.Option(
    help="time between analyses: 30s, 10m, 1h, 1d (default 10m)")]
KeyOpt = Annotated[str | None, typer.Option(
    help="routing key: header:NAME, json:FIELD.PATH or client (default header:X-Routing-Key)")]
RequireEvalOpt = Annotated[bool, typer.Option(
    "--require-evaluation", help="refuse unless the candidate's newest gated evaluation "
                                 "passed (shipyard evaluate --gate)")]
OverrideEvalOpt = Annotated[str | None, typer.Option(
    help="with --require-evaluation: start without a passed evaluation, for this reason "
         "(audited)")]


def _registry(url: str | None) -> Registry:
    from shipyard.registry import Registry

    return Registry(url)


def _given(**values: Any) -> dict[str, Any]:
    """The options given on the command line: the plan's own defaults fill the rest."""
    return {k: v for k, v in values.items() if v is not None}


def _interval(text: str | None) -> float | None:
    from shipyard.service.config import ConfigError, parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text, "--interval")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--interval") from None


def _steps(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"steps are percentages separated by commas, like "
                                 f"5,20,50,100, not {text!r}", param_hint="--steps") from None


def _started(rollout: Any, as_json: bool) -> None:
    from shipyard.cli.rollout_tables import print_rollout
    from shipyard.service.deployment_status import rollout_doc

    doc = rollout_doc(rollout)
    if as_json:
        print_json(doc)
        return
    print_rollout(doc, started=True)


def _reason(reason: str | None, default: str) -> str:
    return reason if reason is not None else f"{default} (shipyard CLI)"


@app.command()
def canary(
    endpoint: Endpoint,
    to: Annotated[str, typer.Option("--to", help="candidate model URI, e.g. models:/iris/3")],
    steps: Annotated[str | None, typer.Option(
        help="candidate percent at each step, rising to 100 (default 5,20,50,100)")] = None,
    interval: IntervalOpt = None,
    max_error_rate: Annotated[float | None, typer.Option(
        help="highest error rate (status >= 500) allowed (default 0.01)")] = None,
    max_p99_ms: Annotated[float | None, typer.Option(help="highest p99 latency, ms")] = None,
    max_p99_ratio: Annotated[float | None, typer.Option(
        help="highest p99 latency relative to stable's (default 1.5)")] = None,
    max_prediction_drift: Annotated[float | None, typer.Option(
        help="largest effect size of the prediction drift allowed")] = None,
    metric: Annotated[str | None, typer.Option(
        help="quality gate on labelled traffic: accuracy, f1, precision, recall, rmse, mae")]
    = None,
    tolerance: Annotated[float | None, typer.Option(
        help="how much worse than stable the metric may be (default 0.02)")] = None,
    estimate_gate: Annotated[bool, typer.Option(
        "--estimate-gate", help="gate on the label-free performance estimate too")] = False,
    min_requests: Annotated[int | None, typer.Option(
        help="candidate requests a step needs before a verdict (default 500)")] = None,
    failures: Annotated[int | None, typer.Option(
        help="failed checks in a step that abort the rollout (default 2)")] = None,
    alias: Annotated[str | None, typer.Option(
        help="alias moved to the candidate on promote, e.g. prod")] = None,
    key: KeyOpt = None,
    require_evaluation: RequireEvalOpt = False, override_evaluation: OverrideEvalOpt = None,
    reason: ReasonOpt = None, registry: RegistryOpt = None, as_json: JsonOpt = False,
) -> None:
    """Start a canary: the candidate takes a growing share of traffic, checked each step."""
    from shipyard.routing.plans import CanaryPlan

    plan = CanaryPlan(**_given(
        steps=_steps(steps), interval_s=_interval(interval), max_error_rate=max_error_rate,
        max_p99_ms=max_p99_ms, max_p99_ratio=max_p99_ratio,
        max_prediction_drift=max_prediction_drift, metric=metric, tolerance=tolerance,
        estimate_gate=estimate_gate or None, min_requests=min_requests, failures=failures,
        alias=alias, key=key))
    with _registry(registry) as reg:
        rollout = reg.rollouts.start_canary(endpoint, to, plan,
                                            reason=_reason(reason, f"canary of {to}"),
                                            require_evaluation=require_evaluation,
                                            override_evaluation=override_evaluation)
    _started(rollout, as_json)


@app.command()
def ab(
    endpoint: Endpoint,
    a: Annotated[str, typer.Option("--a", help="variant a's model URI (the control)")],
    b: Annotated[str, typer.Option("--b", help="variant b's model URI")],
    split: Annotated[float | None, typer.Option(
        help="percent of routing keys that see b (default 50)")] = None,
    key: KeyOpt = None,
    metric: Annotated[str | None, typer.Option(
        help="the metric compared: accuracy (default) or mae")] = None,
    mde: Annotated[float | None, typer.Option(
        help="smallest absolute difference worth detecting (default 0.02)")] = None,
    alpha: Annotated[float | None, typer.Option(help="false positive rate (0.05)")] = None,
    power: Annotated[float | None, typer.Option(help="chance to detect the mde (0.8)")] = None,
    baseline: Annotated[float | None, typer.Option(
        help="expected value of the metric for a (default 0.5, the most requests)")] = None,
    sd: Annotated[float | None, typer.Option(
        help="mae only: one request's standard deviation of the absolute error")] = None,
    fixed_horizon: Annotated[bool, typer.Option(
        "--fixed-horizon", help="a fixed-horizon test (no verdict before the planned "
                                "sample) instead of the always-valid sequential one")] = False,
    interval: IntervalOpt = None,
    require_evaluation: RequireEvalOpt = False, override_evaluation: OverrideEvalOpt = None,
    reason: ReasonOpt = None, registry: RegistryOpt = None, as_json: JsonOpt = False,
) -> None:
    """Start a sticky A/B test, printing the planned sample size per variant first."""
    from shipyard.cli.rollout_tables import print_sample_plan
    from shipyard.routing.plans import ABPlan
    from shipyard.service.deployment_status import ab_sample_plan

    plan = ABPlan(**_given(split=split, key=key, metric=metric, mde=mde, alpha=alpha,
                           power=power, baseline=baseline, sd=sd,
                           sequential=False if fixed_horizon else None,
                           interval_s=_interval(interval)))
    sample = ab_sample_plan(plan)  # before anything changes: a plan that cannot be met fails
    if not as_json:
        print_sample_plan(plan, sample)
    with _registry(registry) as reg:
        rollout = reg.rollouts.start_ab(endpoint, a, b, plan,
                                        reason=_reason(reason, f"A/B test of {a} and {b}"),
                                        require_evaluation=require_evaluation,
                                        override_evaluation=override_evaluation)
    _started(rollout, as_json)


@app.command()
def shadow(
    endpoint: Endpoint,
    candidate: Annotated[str, typer.Option(help="model URI that gets a copy of requests")],
    percent: Annotated[float | None, typer.Option(
        help="percent of requests copied (default 100)")] = None,
    interval: IntervalOpt = None,
    reason: ReasonOpt = None, registry: RegistryOpt = None, as_json: JsonOpt = False,
) -> None:
    """Start a shadow: the current version answers, the candidate gets copies."""
    from shipyard.routing.plans import ShadowPlan

    plan = ShadowPlan(**_given(percent=percent, interval_s=_interval(interval)))
    with _registry(registry) as reg:
        rollout = reg.rollouts.start_shadow(endpoint, candidate, plan,
                                            reason=_reason(reason, f"shadow of {candidate}"))
    _started(rollout, as_json)


@app.command()
def bluegreen(
    endpoint: Endpoint,
    to: Annotated[str, typer.Option("--to", help="green model URI, loaded beside blue")],
    require_evaluation: RequireEvalOpt = False, override_evaluation: OverrideEvalOpt = None,
    reason: ReasonOpt = None, registry: RegistryOpt = None, as_json: JsonOpt = False,
) -> None:
    """Start a blue-green rollout: the new version warm beside the live one."""
    with _registry(registry) as reg:
        rollout = reg.rollouts.start_bluegreen(endpoint, to,
                                               reason=_reason(reason, f"blue-green to {to}"),
                                               require_evaluation=require_evaluation,
                                               override_evaluation=override_evaluation)
    _started(rollout, as_json)


@app.command()
def switch(endpoint: Endpoint, reason: ReasonOpt = None, registry: RegistryOpt = None,
           as_json: JsonOpt = False) -> None:
    """Switch the running blue-green rollout's live version (instant, both stay warm)."""
    with _registry(registry) as reg:
        reg.rollouts.switch(endpoint, reason=_reason(reason, "blue-green switch"))
    _show_status(endpoint, registry, as_json, done="switched")


@app.command()
def promote(
    endpoint: Endpoint,
    winner: Annotated[str | None, typer.Option(help="an A/B test's winner: a or b")] = None,
    reason: ReasonOpt = None, registry: RegistryOpt = None, as_json: JsonOpt = False,
) -> None:
    """Promote the running rollout's candidate to all traffic now (moving its alias)."""
    with _registry(registry) as reg:
        kwargs = {} if winner is None else {"winner": winner}
        reg.rollouts.promote(endpoint, reason=_reason(reason, "promoted by hand"), **kwargs)
    _show_status(endpoint, registry, as_json, done="promoted")


@app.command()
def abort(endpoint: Endpoint, reason: ReasonOpt = None, registry: RegistryOpt = None,
          as_json: JsonOpt = False) -> None:
    """Abort the running rollout: all traffic back to the stable version."""
    with _registry(registry) as reg:
        reg.rollouts.abort(endpoint, reason=_reason(reason, "aborted by hand"))
    _show_status(endpoint, registry, as_json, done="aborted")


@app.command()
def status(endpoint: Endpoint, registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """The policy with each version's share, the running rollout and its latest decisions."""
    _show_status(endpoint, registry, as_json)


@app.command()
def history(
    endpoint: Endpoint,
    limit: Annotated[int, typer.Option(help="at most this many rollouts", min=1)] = 20,
    registry: RegistryOpt = None, as_json: JsonOpt = False,
) -> None:
    """Past rollouts with every decision and its numbers, and the policy revisions."""
    from shipyard.cli.rollout_tables import print_history
    from shipyard.service.deployment_status import deployment_history

    with _registry(registry) as reg:
        doc = deployment_history(reg, endpoint, limit=limit)
    if as_json:
        print_json(doc)
        return
    print_history(doc)


def deploy(
    endpoint: Endpoint,
    model_uri: Annotated[str, typer.Argument(help="model URI, e.g. models:/iris/3")],
    require_evaluation: RequireEvalOpt = False, override_evaluation: OverrideEvalOpt = None,
    reason: ReasonOpt = None, registry: RegistryOpt = None, as_json: JsonOpt = False,
) -> None:
    """Serve one model version on an endpoint (refused while a rollout runs)."""
    with _registry(registry) as reg:
        revision = reg.rollouts.deploy(endpoint, model_uri,
                                       reason=_reason(reason, f"deploy {model_uri}"),
                                       require_evaluation=require_evaluation,
                                       override_evaluation=override_evaluation)
    if as_json:
        print_json(revision.to_dict())
        return
    console.print(f"[green]✓[/] {endpoint} → {revision.policy.versions[0]} "
                  f"(revision {revision.revision})", highlight=False)


def rollback(endpoint: Endpoint, reason: ReasonOpt = None, registry: RegistryOpt = None,
             as_json: JsonOpt = False) -> None:
    """Back to the last stable version: aborts a running rollout, else redeploys the version
    served before the current one."""
    with _registry(registry) as reg:
        reg.rollouts.rollback(endpoint, reason=_reason(reason, "rollback"))
    _show_status(endpoint, registry, as_json, done="rolled back")


def _show_status(endpoint: str, registry: str | None, as_json: bool,
                 done: str | None = None) -> None:
    from shipyard.cli.rollout_tables import print_status
    from shipyard.service.deployment_status import deployment_status

    with _registry(registry) as reg:
        doc = deployment_status(reg, endpoint)
    if as_json:
        print_json(doc)
        return
    if done is not None:
        console.print(f"[green]✓[/] {endpoint}: {done}", highlight=False)
    print_status(doc)

