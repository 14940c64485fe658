"""`dagster-uc doctor`: check everything a deploy needs, without changing anything.

Split by what is checked: `cluster` (context, API server, namespace, permissions, Dagster,
ConfigMaps, lock), `registry_checks`, `local` (checkout, podman, Helm and the chart, az);
`model` holds the results and their rendering, `runner` runs them concurrently.
"""

from __future__ import annotations

from dagster_uc.doctor.model import CheckResult, exit_code, render_text, summary, to_json
from dagster_uc.doctor.runner import CHECKS, run_doctor

__all__ = ["CHECKS", "CheckResult", "exit_code", "render_text", "run_doctor", "summary", "to_json"]
