"""The user-code chart installs from a directory, a .tgz, an HTTP chart repo and an OCI registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.chart import (
    RELEASE,
    deployment_entry,
    deployment_name,
    package_chart,
    push_oci_chart,
    serve_chart_repo,
    write_values,
)
from stack.clients import Runner, get_json

pytestmark = pytest.mark.stack
VERSION = "1.8.4"


@pytest.fixture(scope="module")
def chart_tgz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_chart(tmp_path_factory.mktemp("chart-pkg"), VERSION)


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_chart_repo(tmp_path_factory.mktemp("chart-repo"), (VERSION, "1.9.0")) as url:
        yield url


@pytest.fixture(scope="module")
def oci_chart(chart_tgz: Path, oci_registry: str) -> str:
    return push_oci_chart(chart_tgz, oci_registry, "charts")


def installed_chart_version(helm: Runner) -> str:
    (release,) = json.loads(helm("list", "-o", "json").stdout)
    return str(release["chart"])


@pytest.mark.parametrize("source", ["directory", "tgz", "repo", "oci"])
def test_install_from(
    source: str,
    helm: Runner,
    kubectl: Runner,
    user_code_chart: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    values = str(write_values(tmp_path / "v.yaml", deployment_entry("loc-src")))
    common = ["--values", values, "--wait", "--timeout", "120s"]
    if source == "directory":
        helm("upgrade", "--install", RELEASE, str(user_code_chart), *common)
    elif source == "tgz":
        helm("upgrade", "--install", RELEASE, str(request.getfixturevalue("chart_tgz")), *common)
    elif source == "repo":
        url = request.getfixturevalue("chart_repo")
        helm(
            "upgrade", "--install", RELEASE, "dagster-user-deployments", "--repo", url,
            "--version", VERSION, *common,
        )  # fmt: skip
    else:
        ref = request.getfixturevalue("oci_chart")
        helm("upgrade", "--install", RELEASE, ref, "--version", VERSION, "--plain-http", *common)
    assert installed_chart_version(helm) == f"dagster-user-deployments-{VERSION}"
    dep = get_json(kubectl, "deployment", deployment_name("loc-src"))
    assert dep["status"]["readyReplicas"] == 1
    assert get_json(kubectl, "service", "loc-src")["spec"]["clusterIP"]
