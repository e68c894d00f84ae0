"""A per-column alert rule names one of the model's input columns: a rule on a column the
monitor never writes (``missing_share(nope) > 0.1``) would never fire, and nothing said so."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitoring.test_alert_metrics import _regression_window, _serve, packages
from monitoring.test_monitor_service import BASE, ENDPOINT, HOUR
from shipyard.service.config import ConfigError, MonitorConfig
from shipyard.service.monitor import Monitor
from shipyard.service.monitor_rules import check_serve_rules

__all__ = ["packages"]  # the fixture: a regressor's and a classifier's package directories


@pytest.mark.parametrize("rule", ["missing_share(nope) > 0.1", "drifted(prediction) > 0",
                                  "out_of_range_share(X0) > 0.1"])
def test_serve_refuses_a_rule_on_a_column_the_model_lacks(packages: dict[str, Path],
                                                          rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_serve_rules(_serve({"rules": [rule]}, str(packages["price"])))
    column = rule[rule.index("(") + 1:rule.index(")")]
    message = str(caught.value)
    assert f"alert rule '{rule}'" in message and f"no input column '{column}'" in message
    assert "its input columns: x0, x1" in message
    check_serve_rules(_serve({"rules": ["missing_share(x0) > 0.1", "drifted(x1) > 0"]},
                             str(packages["price"])))


def test_monitor_run_refuses_a_rule_on_a_column_the_model_lacks(
        packages: dict[str, Path], tmp_path: Path) -> None:
    _regression_window(tmp_path / "reg")
    config = MonitorConfig(reference=str(packages["price"]), rules=("missing_share(nope) > 0",))
    watched = Monitor(ENDPOINT, tmp_path / "reg" / "logs", config,
                      clock=lambda: BASE + 2 * HOUR)
    before = watched.history.records()
    with pytest.raises(ConfigError, match=r"price v1 .* has no input column 'nope'"):
        watched.run(window=600.0)
    assert watched.history.records() == before  # nothing computed, nothing stored
