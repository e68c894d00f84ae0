"""Monitoring (L1 pure core): drift, data quality, performance, outliers, alert rules.

Numbers in (arrays, profiles), frozen dataclasses out; no I/O. The service layer reads the
prediction log and stores results.

    from shipyard.monitoring import compare
    report = compare(reference_profile, window_df)   # DriftReport
    report.dataset_drift, report.drifted_columns, report.to_dict()
"""

from shipyard.monitoring.alerts import (
    AlertError,
    AlertEvaluator,
    AlertEvent,
    AlertRule,
    AlertRuleError,
    AlertState,
    Severity,
    parse_rule,
    parse_rules,
)
from shipyard.monitoring.drift import DEFAULT_THRESHOLDS, compare
from shipyard.monitoring.estimation import Calibrator, estimate_performance, performance_report
from shipyard.monitoring.outliers import OutlierModel, outlier_summary
from shipyard.monitoring.performance import classification_metrics, regression_metrics
from shipyard.monitoring.quality import (
    QualityFinding,
    QualityReport,
    QualityThresholds,
    check_quality,
)
from shipyard.monitoring.report import ColumnDrift, DriftReport, MultivariateResult

__all__ = [
    "DEFAULT_THRESHOLDS",
    "AlertError",
    "AlertEvaluator",
    "AlertEvent",
    "AlertRule",
    "AlertRuleError",
    "AlertState",
    "Calibrator",
    "ColumnDrift",
    "DriftReport",
    "MultivariateResult",
    "OutlierModel",
    "QualityFinding",
    "QualityReport",
    "QualityThresholds",
    "Severity",
    "check_quality",
    "classification_metrics",
    "compare",
    "estimate_performance",
    "outlier_summary",
    "parse_rule",
    "parse_rules",
    "performance_report",
    "regression_metrics",
]
