"""Run every doctor check, concurrently where they are independent, in a fixed order."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dagster_uc.doctor.cluster import CLUSTER_CHECKS, cluster_checks
from dagster_uc.doctor.local import check_az, check_helm, check_podman, checkout_checks
from dagster_uc.doctor.model import CheckResult, failed, from_error, ok, skipped
from dagster_uc.doctor.registry_checks import registry_checks
from dagster_uc.errors import DagsterUcError
from dagster_uc.session import Session

if TYPE_CHECKING:
    from dagster_uc.config import LoadedConfig

T = TypeVar("T")

#: Every check, in the order they are shown.
CHECKS = (
    "config",
    "git",
    "project",
    "deployment-name",
    *CLUSTER_CHECKS,
    "registry",
    "registry-credentials",
    "podman",
    "helm",
    "chart",
    "az",
)


def _guarded(names: tuple[str, ...], function: Callable[..., T], *args: Any) -> Callable[[], Any]:
    """A check body that never raises: an unexpected error fails the checks it stood for."""

    def body() -> Any:
        try:
            return function(*args)
        except Exception as exc:
            result = failed(names[0], f"unexpected {type(exc).__name__}: {exc}")
            return [result, *(skipped(n, f"{names[0]} crashed") for n in names[1:])]

    return body


def _as_list(value: Any) -> list[CheckResult]:
    return value if isinstance(value, list) else [value]


def run_doctor(load: Callable[[], LoadedConfig], cwd: Path) -> list[CheckResult]:
    """The results of every check; `load` reads the configuration (its failure is a check)."""
    try:
        loaded = load()
    except DagsterUcError as exc:
        return [
            from_error("config", exc),
            *(skipped(n, "no valid configuration") for n in CHECKS[1:]),
        ]
    config = loaded.config
    results: list[CheckResult] = [
        ok("config", f"environment '{loaded.environment}' from {loaded.path}")
    ]
    with ThreadPoolExecutor(max_workers=5) as pool:
        checkout: Future[Any] = pool.submit(checkout_checks, config, cwd)
        cluster = pool.submit(_guarded(CLUSTER_CHECKS, cluster_checks, config))
        podman = pool.submit(_guarded(("podman",), check_podman))
        helm = pool.submit(_guarded(("helm", "chart"), check_helm, config))
        az = pool.submit(_guarded(("az",), check_az, config))
        try:
            checkout_results, repository = checkout.result()
        except Exception as exc:
            checkout_results, repository = [failed("git", f"unexpected {exc}")], None
        path = Session(config).registry_path(repository) if repository else None
        registry = pool.submit(
            _guarded(("registry", "registry-credentials"), registry_checks, config, path)
        )
        results += checkout_results
        for future in (cluster, registry, podman, helm, az):
            results += _as_list(future.result())
    return results
