"""The reporting deployments, for ``billpay serve`` and prefect.yaml (see docs/reports.md).

``flow`` is an import path ``module:attribute``; load it with :func:`load_flow`.
"""

from __future__ import annotations

import importlib
from typing import Any

REPORT_DEPLOYMENTS: list[dict[str, Any]] = [
    {
        "name": "report-success-rate",
        "flow": "flows.reports:report_success_rate_flow",
        "interval_seconds": 900,
    },
    {
        "name": "report-provider-performance",
        "flow": "flows.reports:report_provider_performance_flow",
        "interval_seconds": 900,
    },
    {
        "name": "daily-report",
        "flow": "flows.reports:daily_report_flow",
        "cron": "0 6 * * *",
        "timezone": "Africa/Lagos",
    },
]


def load_flow(path: str) -> Any:
    """``"flows.reports:daily_report_flow"`` -> the flow object (imported on demand)."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
