"""A self-built Dagster chart labels its daemon `app.kubernetes.io/version: dev`: that is no
version, so the image tag is read, then `dagster --version` is run in a daemon pod (as the
original dagster-uc does), and only when all of that fails is the version unknown (the deploy
warns and goes on; never a false mismatch)."""

from __future__ import annotations

from typing import Any

import pytest

from dagster_uc.instance import cluster_dagster_version, version_from_cli, version_from_deployment
from dagster_uc.kube import make_client
from stack.pytest_plugin import KubeEnv, wait_rolled_out

DAEMON = "dagster-daemon"
SELF_BUILT = {"app.kubernetes.io/version": "dev", "helm.sh/chart": "dagster-0.11.0"}


@pytest.mark.parametrize("label", ["dev", '"dev"', "latest", "0.0.1-dev", "master"])
def test_a_label_that_is_no_version_gives_way_to_the_image_tag(label: str) -> None:
    labels = {**SELF_BUILT, "app.kubernetes.io/version": label}
    found = version_from_deployment(labels, ["dagster/dagster-k8s:1.8.4"])
    assert (found.version, found.source) == ("1.8.4", "image dagster/dagster-k8s:1.8.4")


def test_the_self_built_charts_own_version_is_not_taken_for_dagsters() -> None:
    found = version_from_deployment(SELF_BUILT, ["registry.example/dagster:dev"])
    assert found.version is None
    assert "'dev'" in found.source


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("dagster, version 1.8.4\n", "1.8.4"),
        ("dagster, version 1.9.0rc1\n", "1.9.0rc1"),
        ("dagster, version 1!0+dev\n", None),
        ("Usage: dagster [OPTIONS]\n", None),
    ],
)
def test_the_cli_output_names_the_version(output: str, version: str | None) -> None:
    assert version_from_cli(output) == version


def _self_built(kube: KubeEnv) -> None:
    patch = {
        "metadata": {"labels": SELF_BUILT},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "dagster", "image": "registry.example/dagster:dev"}]
                }
            }
        },
    }
    kube.emulator.patch("apps/v1", "deployments", kube.namespace, DAEMON, patch)
    wait_rolled_out(kube.emulator, kube.namespace, DAEMON)


def _read(kube: KubeEnv) -> Any:
    client = make_client(kube.context, kube.namespace, {"KUBECONFIG": str(kube.kubeconfig)})
    return cluster_dagster_version(client, kube.namespace, DAEMON)


def test_a_self_built_instance_is_asked_with_dagster_version(kube: KubeEnv) -> None:
    _self_built(kube)
    found = _read(kube)
    assert found.version == "1.8.4", found.source
    assert found.source.startswith("`dagster --version` in pod dagster-daemon-")


def test_when_the_pod_cannot_be_asked_the_version_is_unknown_and_says_why(kube: KubeEnv) -> None:
    _self_built(kube)
    kube.emulator.inject_fault("*", "/pods/[^/]+/exec$", status=403, times=None)
    try:
        found = _read(kube)
    finally:
        kube.emulator.clear_faults()
    assert found.version is None
    assert "label app.kubernetes.io/version is 'dev'" in found.source
    assert "could not run `dagster --version` in pod dagster-daemon-" in found.source
    assert "403" in found.source
