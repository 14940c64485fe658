"""The Helm adapter with real Helm 3 and Helm 4 against the emulated API server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lightkube.resources.apps_v1 import Deployment

from dagster_uc.errors import OperationError, UsageError
from dagster_uc.helm import ChartSource, Helm, HelmOptions
from stack.chart import CHART_NAME, package_chart, push_oci_chart, serve_chart_repo
from stack.pytest_plugin import default_signals
from tests.helm.chart_values import VERSION, values_yaml

RELEASE = "dagster-user-code"


def _image(client, name: str) -> str:  # type: ignore[no-untyped-def]
    dep = client.get(Deployment, f"{RELEASE}-{CHART_NAME}-{name}")
    return dep.spec.template.spec.containers[0].image


def test_major_version(make_helm, helm_binary: Path, tools) -> None:  # type: ignore[no-untyped-def]
    helm = make_helm(helm_binary)
    assert helm.major_version() == (3 if helm_binary == Path(tools.helm3) else 4)


def test_install_upgrade_history_rollback(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, user_code_chart: Path, lightkube_client
) -> None:
    helm = make_helm(helm_binary)
    chart = ChartSource(str(user_code_chart))
    assert helm.history(RELEASE) == []

    first = helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "1.8.4-0")), timeout_s=60)
    assert (first.revision, first.status) == (1, "deployed")
    assert _image(lightkube_client, "foo") == "registry.test/team/foo:1.8.4-0"

    second = helm.upgrade_install(
        RELEASE, chart, values_yaml(("foo", "1.8.4-1"), ("bar", "1.8.4-0")), timeout_s=60
    )
    assert second.revision == 2
    assert _image(lightkube_client, "foo") == "registry.test/team/foo:1.8.4-1"
    assert _image(lightkube_client, "bar") == "registry.test/team/bar:1.8.4-0"

    history = helm.history(RELEASE)
    assert [(r.revision, r.status) for r in history] == [(1, "superseded"), (2, "deployed")]

    helm.rollback(RELEASE, 1)
    history = helm.history(RELEASE)
    assert [(r.revision, r.status) for r in history][-1] == (3, "deployed")
    assert _image(lightkube_client, "foo") == "registry.test/team/foo:1.8.4-0"
    assert not list(lightkube_client.list(Deployment, labels={"deployment": "bar"})), (
        "rollback removes the deployment added in revision 2"
    )

    helm.uninstall(RELEASE)
    assert helm.history(RELEASE) == []
    helm.uninstall(RELEASE)  # a missing release is fine


def test_wait_flag_makes_helm_wait_for_ready_pods(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, user_code_chart: Path, kube
) -> None:
    """With `wait`, Helm returns only once the pods are ready: pods held unready make it time
    out and mark the revision failed; without `wait` it would report "deployed" at once."""
    helm = make_helm(helm_binary)
    chart = ChartSource(str(user_code_chart))
    kube.emulator.hold_unready(kube.namespace, "deployment=foo")
    with pytest.raises(OperationError, match=f"helm upgrade of release {RELEASE} failed"):
        helm.upgrade_install(
            RELEASE, chart, values_yaml(("foo", "1.8.4-0")), timeout_s=3, wait=True
        )
    assert [(r.revision, r.status) for r in helm.history(RELEASE)] == [(1, "failed")]

    kube.emulator.release_unready(kube.namespace, "deployment=foo")
    result = helm.upgrade_install(
        RELEASE, chart, values_yaml(("foo", "1.8.4-1")), timeout_s=60, wait=True
    )
    assert (result.revision, result.status) == (2, "deployed")


def test_kubeconfig_from_environment(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, user_code_chart: Path
) -> None:
    helm = make_helm(helm_binary, kubeconfig=False)
    result = helm.upgrade_install(
        RELEASE, ChartSource(str(user_code_chart)), values_yaml(("foo", "1")), timeout_s=60
    )
    assert result.revision == 1


def test_bad_chart_path_reports_helms_message(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, tmp_path: Path
) -> None:
    helm = make_helm(helm_binary)
    missing = tmp_path / "no-such-chart"
    with pytest.raises(OperationError) as info:
        helm.upgrade_install(RELEASE, ChartSource(str(missing)), values_yaml(("foo", "1")))
    message = str(info.value)
    assert message.startswith(f"helm upgrade of release {RELEASE} failed: ")
    assert str(missing) in message
    assert "Error:" not in message and "\n" not in message


def test_bad_values_report_helms_message(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, user_code_chart: Path
) -> None:
    helm = make_helm(helm_binary)
    with pytest.raises(OperationError) as info:
        helm.upgrade_install(RELEASE, ChartSource(str(user_code_chart)), "deployments: [\n")
    message = str(info.value)
    assert message.startswith(f"helm upgrade of release {RELEASE} failed: ")
    assert "yaml" in message.lower()
    assert helm.history(RELEASE) == []


def test_failed_upgrade_keeps_previous_revision(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, user_code_chart: Path, lightkube_client
) -> None:
    helm = make_helm(helm_binary)
    chart = ChartSource(str(user_code_chart))
    helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "1")), timeout_s=60)
    # A template error (a string where the chart needs a list) fails before anything is applied.
    with pytest.raises(OperationError, match="helm upgrade of release") as info:
        helm.upgrade_install(RELEASE, chart, "deployments: not-a-list\n", timeout_s=60)
    assert "not-a-list" in str(info.value)
    assert [(r.revision, r.status) for r in helm.history(RELEASE)] == [(1, "deployed")]
    assert _image(lightkube_client, "foo") == "registry.test/team/foo:1"


def test_helm_missing_is_a_usage_error(kube) -> None:  # type: ignore[no-untyped-def]
    helm = Helm(HelmOptions(kube.context, kube.namespace, binary="no-such-helm-binary"))
    with pytest.raises(UsageError, match="helm was not found"):
        helm.major_version()


def test_template_renders_without_cluster(  # type: ignore[no-untyped-def]
    helm_binary: Path, user_code_chart: Path, helm_env
) -> None:
    helm = Helm(HelmOptions("no-such-context", "ns", binary=str(helm_binary)))
    out = helm.template(RELEASE, ChartSource(str(user_code_chart)), values_yaml(("foo", "7")))
    assert f"name: {RELEASE}-{CHART_NAME}-foo" in out
    assert "registry.test/team/foo:7" in out


def test_chart_from_http_repository(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, tmp_path: Path, lightkube_client
) -> None:
    helm = make_helm(helm_binary)
    with serve_chart_repo(tmp_path / "repo", versions=("1.8.3", VERSION), helm=helm_binary) as url:
        chart = ChartSource(CHART_NAME, version=VERSION, repo_url=url)
        result = helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "1")), timeout_s=60)
        assert result.status == "deployed"
        assert helm.history(RELEASE)[-1].chart == f"{CHART_NAME}-{VERSION}"
        with pytest.raises(OperationError) as info:
            helm.upgrade_install(
                RELEASE,
                ChartSource(CHART_NAME, version="9.9.9", repo_url=url),
                values_yaml(("foo", "2")),
            )
        assert "9.9.9" in str(info.value)


def test_oci_chart_with_registry_login(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, helm_env, tmp_path: Path, lightkube_client
) -> None:
    from stack.registry import LocalRegistry

    helm = make_helm(helm_binary)
    tgz = package_chart(tmp_path / "pkg", VERSION, helm=helm_binary)
    with LocalRegistry(auth="htpasswd") as registry:
        assert registry.username and registry.password
        with pytest.raises(OperationError) as info:
            helm.registry_login(registry.host, registry.username, "wrong-password")
        assert f"helm registry login to {registry.host} failed: " in str(info.value)
        assert "wrong-password" not in str(info.value)

        helm.registry_login(registry.host, registry.username, registry.password)
        # The stored credentials let plain `helm push` and the OCI install through.
        push = [str(helm_binary), "push", str(tgz), f"oci://{registry.host}/charts", "--plain-http"]
        done = subprocess.run(push, capture_output=True, text=True, env=dict(os.environ))
        assert done.returncode == 0, done.stderr
        chart = ChartSource(f"oci://{registry.host}/charts/{CHART_NAME}", VERSION, None, True)
        result = helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "1")), timeout_s=60)
        assert result.status == "deployed"


def test_oci_chart_anonymous(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, tmp_path: Path
) -> None:
    from stack.registry import LocalRegistry

    helm = make_helm(helm_binary)
    tgz = package_chart(tmp_path / "pkg", VERSION, helm=helm_binary)
    with LocalRegistry() as registry:
        ref = push_oci_chart(tgz, registry.host, "helm", helm=helm_binary)
        result = helm.upgrade_install(
            RELEASE, ChartSource(ref, VERSION, None, True), values_yaml(("foo", "1")), timeout_s=60
        )
        assert result.revision == 1


def _mark_latest_pending(client, release: str, revision: int) -> None:  # type: ignore[no-untyped-def]
    """Make the release look like a Helm run was killed mid-upgrade (as Helm stores it)."""
    import base64
    import gzip
    import json

    from lightkube.resources.core_v1 import Secret

    name = f"sh.helm.release.v1.{release}.v{revision}"
    secret = client.get(Secret, name)
    raw = base64.b64decode(base64.b64decode(secret.data["release"]))
    doc = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    doc["info"]["status"] = "pending-upgrade"
    encoded = base64.b64encode(gzip.compress(json.dumps(doc).encode())).decode()
    secret.data["release"] = base64.b64encode(encoded.encode()).decode()
    secret.metadata.labels["status"] = "pending-upgrade"
    client.replace(secret)


def test_recover_pending_release(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, user_code_chart: Path, lightkube_client
) -> None:
    helm = make_helm(helm_binary)
    chart = ChartSource(str(user_code_chart))
    assert helm.recover_pending(RELEASE) is None
    helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "1")), timeout_s=60)
    helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "2")), timeout_s=60)
    assert helm.recover_pending(RELEASE) is None
    _mark_latest_pending(lightkube_client, RELEASE, 2)
    with pytest.raises(OperationError, match="in progress"):
        helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "3")), timeout_s=60)

    assert helm.recover_pending(RELEASE) == "rolled back pending-upgrade revision 2 to 1"
    result = helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "3")), timeout_s=60)
    assert result.status == "deployed"
    assert _image(lightkube_client, "foo") == "registry.test/team/foo:3"


def test_recover_pending_first_install(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, user_code_chart: Path, lightkube_client
) -> None:
    helm = make_helm(helm_binary)
    chart = ChartSource(str(user_code_chart))
    helm.upgrade_install(RELEASE, chart, values_yaml(("foo", "1")), timeout_s=60)
    _mark_latest_pending(lightkube_client, RELEASE, 1)
    assert helm.recover_pending(RELEASE) == "uninstalled release stuck in pending-upgrade"
    assert helm.history(RELEASE) == []


_INTERRUPTED_UPGRADE = """
import sys
from dagster_uc.helm import ChartSource, Helm, HelmOptions
context, namespace, kubeconfig, binary, chart, values = sys.argv[1:]
helm = Helm(HelmOptions(context, namespace, kubeconfig, binary=binary))
helm.major_version()
print("started", flush=True)
helm.upgrade_install("dagster-user-code", ChartSource(chart), open(values).read(),
                     timeout_s=120, wait=True)
"""


def test_ctrl_c_lets_helm_mark_the_release_failed(  # type: ignore[no-untyped-def]
    make_helm, helm_binary: Path, user_code_chart: Path, kube, helm_env, tmp_path: Path
) -> None:
    """SIGINT to dagster-uc alone (as from `kill -INT`) is forwarded to Helm, which then
    records the release as failed instead of leaving it pending (that would block upgrades)."""
    helm = make_helm(helm_binary)
    kube.emulator.hold_unready(kube.namespace, "deployment=foo")
    values = tmp_path / "values.yaml"
    values.write_text(values_yaml(("foo", "1")))
    args = [kube.context, kube.namespace, str(kube.kubeconfig), str(helm_binary)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_UPGRADE, *args, str(user_code_chart), str(values)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=helm_env,
        preexec_fn=default_signals,  # it gets SIGINT, even when the suite runs with it ignored
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 60  # a guard against hangs, not a timing assertion
        while not helm.history(RELEASE):  # Helm has stored the pending revision and waits
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "Helm never stored the pending revision"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
    except BaseException:
        proc.kill()
        raise
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
    assert [(r.revision, r.status) for r in helm.history(RELEASE)] == [(1, "failed")]
    assert helm.recover_pending(RELEASE) is None
    kube.emulator.release_unready(kube.namespace, "deployment=foo")
    result = helm.upgrade_install(RELEASE, ChartSource(str(user_code_chart)), values.read_text())
    assert result.status == "deployed"
