"""Clients behind corporate networks and cloud logins: an HTTP proxy (a real Squid) and
kubeconfig exec credential plugins (kubelogin, EKS, GKE), end to end.

The proxy resolves `kube.proxied.test` and `registry.proxied.test` to the local API server
and registry through its own hosts file; nothing else on this machine can resolve those
names, so the direct path to both is closed for the test: a command that reaches them went
through the proxy. (Kubernetes clients and podman never proxy 127.0.0.1 or localhost, which
is why the servers are not named by their address.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.real_cluster import real_context
from stack.squid import SquidProxy, squid_available
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.skipif(
    real_context() is not None,
    reason="the emulator and the local registry stand in for the servers behind the proxy",
)
NAME = "demo-project--feat-hello"
KUBE_HOST = "kube.proxied.test"
REGISTRY_HOST = "registry.proxied.test"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def edit_kubeconfig(stack: Stack, path: Path, edit: Any) -> None:
    """A copy of the test's kubeconfig changed by `edit(cluster, user)`, used from now on."""
    config = yaml.safe_load(stack.kube.kubeconfig.read_text())
    edit(config["clusters"][0]["cluster"], config["users"][0]["user"])
    path.write_text(yaml.safe_dump(config))
    stack.env["KUBECONFIG"] = str(path)


@pytest.fixture
def proxied(stack: Stack, tmp_path: Path) -> Iterator[SquidProxy]:
    """The API server and the registry named so that only the proxy reaches them."""
    if not squid_available():
        pytest.skip("squid is not installed (scripts/install-system-deps.sh installs it)")
    for var in PROXY_VARS:
        stack.env.pop(var, None)
    port = stack.emulator.url.rsplit(":", 1)[1]

    def via_name(cluster: dict[str, Any], _user: dict[str, Any]) -> None:
        cluster["server"] = f"http://{KUBE_HOST}:{port}"

    edit_kubeconfig(stack, tmp_path / "kubeconfig-proxied", via_name)
    stack.write_config(container_registry=f"{REGISTRY_HOST}:{stack.registry.port}")
    with SquidProxy({KUBE_HOST: "127.0.0.1", REGISTRY_HOST: "127.0.0.1"}) as proxy:
        yield proxy


def proxy_env(proxy: SquidProxy, no_proxy: str = "") -> dict[str, str]:
    return {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "NO_PROXY": no_proxy}


def test_deploy_through_an_http_proxy(stack: Stack, proxied: SquidProxy) -> None:
    stack.ok("deployment", "deploy", env=proxy_env(proxied))

    assert stack.tags(NAME) == ["1.8.4-0"]
    seen = proxied.requests()
    kube = [r for r in seen if f"//{KUBE_HOST}:" in r]
    assert any("/configmaps/" in r for r in kube), "the values ConfigMap was read via the proxy"
    assert any(
        r.startswith("GET ") and f"//{REGISTRY_HOST}:" in r and "/tags/list" in r for r in seen
    ), "dagster-uc's registry client listed the tags via the proxy"
    listed = stack.ok("deployment", "list", "-o", "json", env=proxy_env(proxied))
    assert NAME in listed.stdout


def test_no_proxy_sends_a_host_directly(stack: Stack, proxied: SquidProxy) -> None:
    # entries that do not match keep the proxy
    ok = stack.ok(
        "deployment",
        "list",
        env=proxy_env(proxied, f"example.com,.corp.test,10.0.0.0/8,{KUBE_HOST}:1"),
    )
    assert "No deployments" in ok.output or ok.returncode == 0
    assert any(f"//{KUBE_HOST}:" in r for r in proxied.requests())

    before = len(proxied.requests())
    for no_proxy in (KUBE_HOST, ".proxied.test", "*"):
        direct = stack.run("deployment", "list", env=proxy_env(proxied, no_proxy))
        # direct, the name does not resolve: the command fails without asking the proxy
        assert direct.returncode == 1, direct.output
        lines = [line for line in direct.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in direct.output
        assert "cannot reach the Kubernetes API server" in lines[0]
    assert len(proxied.requests()) == before


def test_kubeconfig_proxy_url_is_used_without_environment(
    stack: Stack, proxied: SquidProxy, tmp_path: Path
) -> None:
    port = stack.emulator.url.rsplit(":", 1)[1]

    def with_proxy_url(cluster: dict[str, Any], _user: dict[str, Any]) -> None:
        cluster["server"] = f"http://{KUBE_HOST}:{port}"
        cluster["proxy-url"] = proxied.url

    edit_kubeconfig(stack, tmp_path / "kubeconfig-proxy-url", with_proxy_url)
    # as in client-go, proxy-url wins over NO_PROXY
    stack.ok("deployment", "list", env={"NO_PROXY": KUBE_HOST})
    assert any(f"//{KUBE_HOST}:" in r for r in proxied.requests())


# --- exec credential plugins ----------------------------------------------------------------

PROMPT = (
    "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and "
    "enter the code STUB-42 to authenticate."
)

STUB_PLUGIN = """#!{python}
import json, os, sys, time
sys.stderr.write({prompt!r} + "\\n")
sys.stderr.flush()
info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "{{}}")
api = info.get("apiVersion", "client.authentication.k8s.io/v1beta1")
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(info) + "\\n")
if os.environ.get("STUB_MODE") == "fail":
    sys.stderr.write("error: the device code expired\\n")
    sys.exit(1)
time.sleep(float(os.environ.get("STUB_DELAY", "1")))
print(json.dumps({{"apiVersion": api, "kind": "ExecCredential",
                  "status": {{"token": "emulator", "expirationTimestamp": "2099-01-01T00:00:00Z"}}}}))
"""


@pytest.fixture
def exec_plugin(stack: Stack, tmp_path: Path) -> Path:
    """The test's kubeconfig user logs in through a stub of kubelogin; returns its call log."""
    plugin = tmp_path / "kubelogin-stub"
    plugin.write_text(STUB_PLUGIN.format(python=sys.executable, prompt=PROMPT))
    plugin.chmod(0o755)
    log = tmp_path / "plugin-calls.jsonl"

    def with_exec(_cluster: dict[str, Any], user: dict[str, Any]) -> None:
        user.clear()
        user["exec"] = {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "args": ["get-token", "--login", "devicecode"],
            "env": [{"name": "STUB_LOG", "value": str(log)}],
            "interactiveMode": "IfAvailable",
            "provideClusterInfo": True,
        }

    edit_kubeconfig(stack, tmp_path / "kubeconfig-exec", with_exec)
    return log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_exec_plugin_prompt_reaches_the_terminal_and_its_token_is_used(
    stack: Stack, exec_plugin: Path
) -> None:
    result = stack.run("deployment", "list", timeout=60)
    assert result.returncode == 0, result.output
    assert PROMPT in result.stderr
    (call,) = calls(exec_plugin)  # one login for the whole command
    assert call["spec"]["interactive"] is False
    assert call["spec"]["cluster"]["server"] == stack.emulator.url


def test_a_failing_exec_plugin_is_one_clear_error(stack: Stack, exec_plugin: Path) -> None:
    result = stack.run("deployment", "list", timeout=60, env={"STUB_MODE": "fail"})
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    assert PROMPT in result.stderr and "error: the device code expired" in result.stderr
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert f"credential plugin {exec_plugin.parent / 'kubelogin-stub'} failed (exit 1)" in last


def test_an_exec_plugin_that_never_answers_times_out(stack: Stack, exec_plugin: Path) -> None:
    result = stack.run(
        "deployment",
        "list",
        timeout=60,
        env={"STUB_DELAY": "45", "DAGSTER_UC_EXEC_TIMEOUT": "2"},
    )
    assert result.returncode == 1, result.output
    assert PROMPT in result.stderr
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert "did not hand out a token within 2 s" in last and "DAGSTER_UC_EXEC_TIMEOUT" in last
