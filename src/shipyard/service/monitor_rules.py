"""Do an endpoint's alert rules fit its model? Checked before serving and before monitoring.

Parsing the config already refuses metrics that do not exist (``monitoring/alert_metrics``);
whether ``accuracy`` or ``mae`` applies needs the model's task, and whether
``missing_share(age)`` names a column needs its inputs, which only its manifest knows.
:func:`check_serve_rules` reads each monitored endpoint's manifest (a package directory, or
the registry's copy for a ``models:/`` URI; never the model itself) and raises
:class:`ConfigError` before a server starts (so does a ``slices`` column that is no input);
the monitor checks the task and inputs of each reference it resolves the same way
(:func:`check_rules_task`).

A model whose manifest cannot be read here is not checked: serving it fails on its own,
with its own message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.monitoring.alert_metrics import check_columns, check_task
from shipyard.monitoring.alerts import AlertRule, parse_rules
from shipyard.service.config import ConfigError, ServeConfig
from shipyard.settings import Settings

log = logging.getLogger(__name__)


def model_task(source: str, settings: Settings | None = None) -> str | None:
    """The task (``classification``, ``regression``, ``other``) in the manifest of a
    package directory or ``models:/`` URI; None when it cannot be read."""
    return model_signature(source, settings)[0]


def model_signature(source: str, settings: Settings | None = None
                    ) -> tuple[str | None, list[str] | None]:
    """The task and the input names in the manifest of a package directory or ``models:/``
    URI; (None, None) when it cannot be read."""
    from shipyard.registry import is_model_uri

    try:
        if is_model_uri(source):
            from shipyard.registry import Registry

            with Registry(settings=settings) as registry:
                doc: Mapping[str, Any] = registry.get_version(source).manifest
            signature = doc["signature"]
            return (str(signature.get("task", "other")),
                    [str(c["name"]) for c in signature.get("inputs", [])])
        from shipyard.packaging import Manifest

        read = Manifest.read(Path(source).expanduser()).signature
        return str(read.task), read.input_names
    except (ShipyardError, OSError, KeyError, AttributeError, TypeError) as exc:
        log.debug("no task for %s: %s", source, exc)
        return None, None


def check_rules_task(rules: Iterable[AlertRule], task: str | None, what: str,
                     inputs: Iterable[str] | None = None) -> None:
    """ConfigError when a rule does not apply to ``task``, or names a column that is not
    one of ``inputs`` (not checked when None)."""
    rules = list(rules)
    try:
        check_task(rules, task, what=what)
        check_columns(rules, inputs, what=what)
    except ShipyardError as exc:
        raise ConfigError(f"monitor.rules: {exc}") from None


def check_slices(slices: Iterable[str], inputs: Iterable[str] | None, what: str) -> None:
    """ConfigError when a slice column is neither one of ``inputs`` (not checked when None)
    nor ``prediction`` / ``target``: the log would never hold it."""
    if inputs is None:
        return
    known = [*inputs, "prediction", "target"]
    unknown = [c for c in slices if c not in known]
    if unknown:
        raise ConfigError(f"monitor.slices: {what} has no column {unknown[0]!r} to slice by; "
                          f"slice by an input ({', '.join(known[:-2][:20]) or 'none'}), "
                          "prediction or target")


def check_serve_rules(config: ServeConfig, settings: Settings | None = None) -> None:
    """Every monitored endpoint's rules apply to its model's task, and its slice columns
    are columns the log holds (see the module doc)."""
    for endpoint in config.endpoints:
        monitor = config.monitor_for(endpoint.name)
        if monitor is None or not (monitor.rules or monitor.slices):
            continue
        task, inputs = model_signature(endpoint.model, settings)
        what = f"endpoint {endpoint.name} ({endpoint.model})"
        check_rules_task(parse_rules(monitor.rules), task, what=what, inputs=inputs)
        check_slices(monitor.slices, inputs, what)
