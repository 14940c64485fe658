"""Resources served in a second, older version: stored once, converted on the way in and out.

The real server keeps one storage version per resource and converts requests made in other
versions. kubectl 1.32's `kubectl autoscale` still creates autoscaling/v1 HPAs, which then
read back through autoscaling/v2 (the preferred version), so the emulator does the same for
HorizontalPodAutoscalers.
"""

from __future__ import annotations

import copy
from typing import Any

from .resources import BY_PATH, Resource

HPA_V1 = BY_PATH[("autoscaling", "v1", "horizontalpodautoscalers")]
HPA_V2 = BY_PATH[("autoscaling", "v2", "horizontalpodautoscalers")]
ALIASES: dict[Resource, Resource] = {HPA_V1: HPA_V2}


def _cpu_target(metrics: list[dict[str, Any]]) -> int | None:
    for m in metrics:
        resource = m.get("resource") or {}
        target = resource.get("target") or {}
        if (
            m.get("type") == "Resource"
            and resource.get("name") == "cpu"
            and target.get("type") == "Utilization"
        ):
            return target.get("averageUtilization")
    return None


def to_storage(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """An object sent in `res`'s version, converted to the stored version."""
    if res is not HPA_V1 or not isinstance(obj, dict):
        return obj
    if obj.get("kind", "HorizontalPodAutoscaler") != "HorizontalPodAutoscaler":
        return obj  # DeleteOptions and the like
    out = copy.deepcopy(obj)
    out["apiVersion"] = HPA_V2.group_version
    spec = out.get("spec")
    if isinstance(spec, dict):
        cpu = spec.pop("targetCPUUtilizationPercentage", None)
        if cpu is not None:
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu},
                    },
                }
            ]
    status = out.get("status")
    if isinstance(status, dict):
        current = status.pop("currentCPUUtilizationPercentage", None)
        if current is not None:
            status["currentMetrics"] = [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "current": {"averageUtilization": current}},
                }
            ]
    return out


def from_storage(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """A stored object as `res`'s version presents it (lists are converted item by item)."""
    if res is not HPA_V1 or not isinstance(obj, dict):
        return obj
    if isinstance(obj.get("items"), list):
        return {
            **obj,
            "kind": "HorizontalPodAutoscalerList",
            "apiVersion": HPA_V1.group_version,
            "items": [from_storage(res, i) for i in obj["items"]],
        }
    if obj.get("kind") != "HorizontalPodAutoscaler":
        return obj
    out = copy.deepcopy(obj)
    out["apiVersion"] = HPA_V1.group_version
    spec = out.get("spec")
    if isinstance(spec, dict):
        cpu = _cpu_target(spec.pop("metrics", None) or [])
        spec.pop("behavior", None)
        if cpu is not None:
            spec["targetCPUUtilizationPercentage"] = cpu
    status = out.get("status")
    if isinstance(status, dict):
        for m in status.pop("currentMetrics", None) or []:
            current = ((m.get("resource") or {}).get("current") or {}).get("averageUtilization")
            if (m.get("resource") or {}).get("name") == "cpu" and current is not None:
                status["currentCPUUtilizationPercentage"] = current
        status.pop("conditions", None)
    return out
