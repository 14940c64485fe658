"""Fixtures: an in-process emulator on a free port with a seeded Dagster instance."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.emulator import Emulator, seed_dagster

CONTEXT = "kind-dagster-local"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    e = Emulator(ready_delay=0.1).start()
    seed_dagster(e, namespace="dagster", dagster_version="1.8.4")
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture
def kubeconfig(emu: Emulator, tmp_path: Path) -> Path:
    return emu.write_kubeconfig(tmp_path / "kubeconfig", context=CONTEXT, namespace="dagster")


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=30, trust_env=False) as client:
        yield client


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll until `predicate` returns something truthy (a generous bound, not a timing test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def cm(name: str, data: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, **meta},
        "data": data or {"k": "v"},
    }


def deployment(
    name: str,
    labels: dict[str, str] | None = None,
    replicas: int = 1,
    image: str = "reg.local/app:1",
    args: list[str] | None = None,
) -> dict[str, Any]:
    labels = labels or {"app": name}
    container: dict[str, Any] = {"name": "main", "image": image}
    if args:
        container["args"] = args
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}},
        },
    }
