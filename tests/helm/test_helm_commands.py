"""Pure parts of the Helm adapter: chart source, command lines, error text, history parsing."""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from dagster_uc.errors import OperationError, UsageError
from dagster_uc.helm import (
    ChartSource,
    Helm,
    HelmOptions,
    chart_source,
    helm_error_text,
    is_loopback_host,
    parse_history,
    parse_major_version,
    registry_login_command,
    template_command,
    upgrade_command,
)
from dagster_uc.helm_schema import (
    external_refs,
    is_schema_fetch_failure,
    without_external_refs,
)
from stack.chart import UNREACHABLE_SCHEMA_DEFS, copy_chart
from stack.tools import Tools
from tests.helm.chart_values import values_yaml


@dataclass
class Cfg:
    helm_chart_path: str | None = None
    container_registry_chart_path: str | None = None
    container_registry: str = "myacr.azurecr.io"
    container_registry_insecure: bool = False
    helm_chart_repository: str = "https://dagster-io.github.io/helm"
    helm_chart_name: str = "dagster-user-deployments"
    dagster_version: str = "1.8.4"
    use_latest_chart_version: bool = False
    kubernetes_context: str = "ctx"
    namespace: str = "dagster"
    helm_disable_openapi_validation: bool = False
    helm_skip_schema_validation: bool = False


def test_chart_source_defaults_to_repository_pinned_to_dagster_version() -> None:
    assert chart_source(Cfg()) == ChartSource(
        ref="dagster-user-deployments",
        version="1.8.4",
        repo_url="https://dagster-io.github.io/helm",
        plain_http=False,
    )


def test_chart_source_latest_has_no_version() -> None:
    assert chart_source(Cfg(use_latest_chart_version=True)).version is None


def test_chart_source_oci_path() -> None:
    src = chart_source(Cfg(container_registry_chart_path="/charts/dagster-user-deployments"))
    assert src == ChartSource("oci://myacr.azurecr.io/charts/dagster-user-deployments", "1.8.4")


@pytest.mark.parametrize(
    ("registry", "insecure", "plain"),
    [
        ("localhost:5000", False, True),
        ("127.0.0.1:41234/team", False, True),
        ("[::1]:5000", False, True),
        ("registry.internal:5000", True, True),
        ("registry.internal:5000", False, False),
    ],
)
def test_chart_source_oci_plain_http(registry: str, insecure: bool, plain: bool) -> None:
    src = chart_source(
        Cfg(
            container_registry=registry,
            container_registry_insecure=insecure,
            container_registry_chart_path="charts/c",
        )
    )
    assert src.plain_http is plain
    assert src.ref == f"oci://{registry}/charts/c"


def test_local_path_wins_and_has_no_version() -> None:
    src = chart_source(
        Cfg(helm_chart_path="/charts/c.tgz", container_registry_chart_path="charts/c")
    )
    assert src == ChartSource("/charts/c.tgz")
    assert src.is_local
    cmd = upgrade_command(HelmOptions("ctx", "ns"), 3, "rel", src, "/v.yaml")
    assert "--version" not in cmd and "--repo" not in cmd


def test_is_loopback_host() -> None:
    assert is_loopback_host("localhost")
    assert is_loopback_host("127.0.0.2:80")
    assert not is_loopback_host("example.com:5000")
    assert not is_loopback_host("10.0.0.1:5000")


def test_upgrade_command_full() -> None:
    opts = HelmOptions(
        kube_context="kind-x",
        namespace="dagster",
        kubeconfig="/k/config",
        binary="helm3",
        disable_openapi_validation=True,
        skip_schema_validation=True,
    )
    src = ChartSource("oci://localhost:5000/charts/c", "1.8.4", None, True)
    cmd = upgrade_command(opts, 3, "dagster-user-code", src, "/tmp/v.yaml", timeout_s=90, wait=True)
    assert cmd == [
        "helm3", "upgrade", "--install", "dagster-user-code", "oci://localhost:5000/charts/c",
        "-n", "dagster", "--kube-context", "kind-x", "--kubeconfig", "/k/config",
        "--values", "/tmp/v.yaml", "--version", "1.8.4", "--plain-http",
        "--disable-openapi-validation", "--skip-schema-validation",
        "--wait", "--timeout", "90s", "-o", "json",
    ]  # fmt: skip


def test_upgrade_command_helm4_wait_and_repo() -> None:
    src = ChartSource("dagster-user-deployments", "1.8.4", "https://charts.example", False)
    cmd = upgrade_command(HelmOptions("c", "n"), 4, "r", src, "/v.yaml", wait=True)
    assert "--wait=watcher" in cmd and "--wait" not in cmd
    assert cmd[cmd.index("--repo") + 1] == "https://charts.example"
    assert "--kubeconfig" not in cmd and "--timeout" not in cmd


def test_upgrade_command_no_wait_by_default() -> None:
    cmd = upgrade_command(HelmOptions("c", "n"), 4, "r", ChartSource("/c"), "/v.yaml")
    assert not any(a.startswith("--wait") for a in cmd)


def test_template_command() -> None:
    cmd = template_command(
        HelmOptions("c", "n", skip_schema_validation=True), "r", ChartSource("x", "1", "u"), "/v"
    )
    assert cmd == [
        "helm", "template", "r", "x", "-n", "n", "--values", "/v", "--version", "1",
        "--repo", "u", "--skip-schema-validation",
    ]  # fmt: skip


def test_registry_login_command_per_major() -> None:
    assert registry_login_command("helm", 4, "localhost:5000", "u", plain_http=True)[-1] == (
        "--plain-http"
    )
    assert registry_login_command("helm", 3, "localhost:5000", "u", plain_http=True)[-1] == (
        "--insecure"
    )
    cmd = registry_login_command("helm", 3, "r.io", "u")
    assert cmd == ["helm", "registry", "login", "r.io", "--username", "u", "--password-stdin"]


def test_parse_major_version() -> None:
    assert parse_major_version("v3.17.2+gcc0bbbd\n") == 3
    assert parse_major_version("v4.1.4+g05fa379") == 4
    with pytest.raises(UsageError):
        parse_major_version("garbage")


def test_helm_error_text_keeps_helms_error_lines() -> None:
    stderr = (
        "walk.go:75: found symbolic link in path\n"
        'Error: UPGRADE FAILED: template: x.yaml:3:4: executing "x" at <.Values.a>: nil pointer\n'
    )
    assert helm_error_text(stderr) == (
        'UPGRADE FAILED: template: x.yaml:3:4: executing "x" at <.Values.a>: nil pointer'
    )
    helm4 = (
        "Error: dagster-user-deployments/templates/x.yaml:1:19\n"
        "  executing <.Values.deployments>:\n"
        "    range can't iterate over not-a-list\n\n"
        "Use --debug flag to render out invalid YAML\n"
    )
    assert helm_error_text(helm4) == (
        "dagster-user-deployments/templates/x.yaml:1:19 executing <.Values.deployments>: "
        "range can't iterate over not-a-list"
    )
    assert helm_error_text("something odd\n") == "something odd"
    assert helm_error_text("", "") == "no error output"


def test_helm_error_text_names_a_permission_the_api_server_refused() -> None:
    stderr = (
        "Error: UPGRADE FAILED: failed to create resource: roles.rbac.authorization.k8s.io "
        '"u-role" is forbidden: User "ann" cannot create resource "roles" in API group '
        '"rbac.authorization.k8s.io" in the namespace "dagster"\n'
    )
    assert helm_error_text(stderr).endswith(
        '; missing permission: create roles.rbac.authorization.k8s.io in namespace "dagster" '
        "(see the Role in docs/permissions.md)"
    )


def test_parse_history() -> None:
    text = (
        '[{"revision":2,"updated":"2024-01-01T00:00:00Z","status":"deployed",'
        '"chart":"c-1.8.4","app_version":"1.8.4","description":"Upgrade complete"},'
        '{"revision":1,"updated":"x","status":"superseded","chart":"c-1.8.4",'
        '"app_version":"1.8.4","description":"Install complete"}]'
    )
    revs = parse_history(text)
    assert [r.revision for r in revs] == [1, 2]
    assert revs[-1].status == "deployed"
    assert parse_history("") == []


SCHEMA_HEAD = "values don't meet the specifications of the schema(s) in the following chart(s):"


@pytest.mark.parametrize(
    "detail",
    [
        # Helm 3.17 (gojsonschema): no network, a dead port, a 404.
        'Get "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json": dial tcp: lookup '
        "kubernetesjsonschema.dev on 10.255.255.53:53: no such host",
        'dagster-user-deployments: Get "http://127.0.0.1:9/d.json": dial tcp 127.0.0.1:9: '
        "connect: connection refused",
        "dagster-user-deployments: Could not read schema from HTTP, response status is 404 "
        "File not found",
        # Helm 4.1 (santhosh-tekuri/jsonschema).
        'dagster-user-deployments: failing loading "http://127.0.0.1:18765/d.json": HTTP request'
        " to http://127.0.0.1:18765/d.json returned status 404 (Not Found)",
    ],
)
def test_a_schema_that_cannot_be_fetched_is_recognised(detail: str) -> None:
    assert is_schema_fetch_failure(f"{SCHEMA_HEAD} {detail}")


def test_a_schema_violation_is_not_a_fetch_failure() -> None:
    violation = (
        f"{SCHEMA_HEAD} dagster-user-deployments: - rbacEnabled: Invalid type. "
        "Expected: boolean, given: string"
    )
    assert not is_schema_fetch_failure(violation)
    assert not is_schema_fetch_failure('UPGRADE FAILED: Get "https://api:6443/x": dial tcp')


def test_without_external_refs_keeps_local_refs_and_the_rest() -> None:
    schema = {
        "definitions": {
            "Affinity": {"$ref": "https://k8s.example/defs.json#/Affinity", "type": "object"},
            "Policy": {"enum": ["Always"]},
        },
        "properties": {"a": {"anyOf": [{"$ref": "#/definitions/Affinity"}, {"type": "null"}]}},
    }
    assert without_external_refs(schema) == {
        "definitions": {"Affinity": {"type": "object"}, "Policy": {"enum": ["Always"]}},
        "properties": {"a": {"anyOf": [{"$ref": "#/definitions/Affinity"}, {"type": "null"}]}},
    }
    assert "$ref" in schema["definitions"]["Affinity"], "the input is not changed"
    assert external_refs(schema) == {"https://k8s.example/defs.json"}


@pytest.mark.parametrize("which", ["helm3", "helm4"])
def test_template_falls_back_when_the_schema_host_is_unreachable(
    tools: Tools, tmp_path: Path, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = copy_chart(tmp_path, schema_defs_url=UNREACHABLE_SCHEMA_DEFS)
    helm = Helm(HelmOptions("ctx", "ns", binary=str(getattr(tools, which))))

    rendered = helm.template("dagster-user-code", ChartSource(str(chart)), values_yaml(("a", "1")))

    assert "name: dagster-user-code-dagster-user-deployments-a" in rendered
    warnings = [line for line in capsys.readouterr().err.splitlines() if "Warning" in line]
    assert len(warnings) == 1
    assert "kubernetesjsonschema.invalid" in warnings[0]
    assert "--skip-schema-validation" in warnings[0]


@pytest.mark.parametrize("which", ["helm3", "helm4"])
def test_a_real_violation_still_fails_when_the_schema_host_is_unreachable(
    tools: Tools, tmp_path: Path, which: str
) -> None:
    chart = copy_chart(tmp_path, schema_defs_url=UNREACHABLE_SCHEMA_DEFS)
    helm = Helm(HelmOptions("ctx", "ns", binary=str(getattr(tools, which))))
    bad = values_yaml(("a", "1")).replace("IfNotPresent", "Sometimes")

    with pytest.raises(OperationError) as failed:
        helm.template("dagster-user-code", ChartSource(str(chart)), bad)

    assert "pullPolicy" in str(failed.value)
    assert "kubernetesjsonschema" not in str(failed.value)


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("which", ["helm3", "helm4"])
def test_template_falls_back_when_the_schema_host_answers_404(
    tools: Tools, tmp_path: Path, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        defs = f"http://127.0.0.1:{server.server_address[1]}/v1.18.0/_definitions.json"
        chart = copy_chart(tmp_path, schema_defs_url=defs)
        helm = Helm(HelmOptions("ctx", "ns", binary=str(getattr(tools, which))))
        rendered = helm.template("r", ChartSource(str(chart)), values_yaml(("a", "1")))
    finally:
        server.shutdown()
        server.server_close()
    assert "kind: Deployment" in rendered
    assert defs in capsys.readouterr().err
