"""Kubeconfig exec credential plugins run as kubectl runs them (real stub plugins)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dagster_uc.errors import OperationError, UsageError
from dagster_uc.kube_exec import (
    ExecCredentialTransport,
    ExecPlugin,
    exec_timeout_s,
    plugin_from_kubeconfig,
    run_plugin,
)

STUB = """#!{python}
import json, os, sys, time
mode = os.environ.get("MODE", "ok")
sys.stderr.write("stub prompt\\n")
with open(os.environ["CALLS"], "a") as log:
    log.write(os.environ["KUBERNETES_EXEC_INFO"] + "\\n")
if mode == "sleep":
    time.sleep(30)
if mode == "fail":
    sys.exit(3)
if mode == "garbage":
    print("not json")
    sys.exit(0)
status = {{}} if mode == "notoken" else {{"token": "tok-" + str(sum(1 for _ in open(os.environ["CALLS"])))}}
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}}))
"""


@pytest.fixture
def stub(tmp_path: Path) -> ExecPlugin:
    script = tmp_path / "stub"
    script.write_text(STUB.format(python=sys.executable))
    script.chmod(0o755)
    return ExecPlugin(command=str(script), env=(("CALLS", str(tmp_path / "calls")),))


def test_plugin_from_kubeconfig() -> None:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "kubelogin",
            "args": ["get-token", "--server-id", "x"],
            "env": [{"name": "A", "value": "1"}],
            "provideClusterInfo": True,
            "installHint": "install kubelogin",
        }
    }
    cluster = {
        "server": "https://aks:443",
        "certificate-authority-data": "Q0E=",
        "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"k": "v"}}],
    }
    plugin = plugin_from_kubeconfig(user, cluster, "aks")
    assert plugin is not None
    assert plugin.args == ("get-token", "--server-id", "x") and plugin.env == (("A", "1"),)
    assert plugin.cluster == {
        "server": "https://aks:443",
        "certificate-authority-data": "Q0E=",
        "config": {"k": "v"},
    }
    assert plugin_from_kubeconfig({"token": "t"}, cluster, "aks") is None
    with pytest.raises(UsageError, match="apiVersion 'x/v9'"):
        plugin_from_kubeconfig({"exec": {"command": "k", "apiVersion": "x/v9"}}, {}, "aks")


def test_token_and_exec_info(
    stub: ExecPlugin, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    token = run_plugin(stub, timeout=30, interactive=False)
    assert token.token == "tok-1" and token.expires_at is None
    assert "stub prompt" in capfd.readouterr().err, "the plugin's stderr is not captured"
    info = json.loads((tmp_path / "calls").read_text())
    assert info["kind"] == "ExecCredential" and info["spec"] == {"interactive": False}


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("fail", r"failed \(exit 3\); its own messages are above"),
        ("garbage", "printed no ExecCredential"),
        ("notoken", "returned no token"),
    ],
)
def test_plugin_failures(
    stub: ExecPlugin, monkeypatch: pytest.MonkeyPatch, mode: str, message: str
) -> None:
    monkeypatch.setenv("MODE", mode)
    with pytest.raises(OperationError, match=message):
        run_plugin(stub, timeout=30, interactive=False)


def test_plugin_timeout(stub: ExecPlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODE", "sleep")
    with pytest.raises(OperationError, match=r"did not hand out a token within 0.5 s"):
        run_plugin(stub, timeout=0.5, interactive=False)


def test_missing_plugin_shows_the_install_hint() -> None:
    plugin = ExecPlugin(command="/nonexistent/kubelogin", install_hint="brew install kubelogin")
    with pytest.raises(UsageError, match="brew install kubelogin"):
        run_plugin(plugin, timeout=5, interactive=False)


def test_timeout_setting() -> None:
    assert exec_timeout_s({}) == 300
    assert exec_timeout_s({"DAGSTER_UC_EXEC_TIMEOUT": "12.5"}) == 12.5
    with pytest.raises(UsageError):
        exec_timeout_s({"DAGSTER_UC_EXEC_TIMEOUT": "soon"})


class Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code

    def close(self) -> None:
        pass


class Request:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    def read(self) -> bytes:
        return b""


class Server:
    """Answers 401 to the first token it sees (it expired), 200 afterwards."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def handle_request(self, request: Request) -> Response:
        self.seen.append(request.headers["Authorization"])
        return Response(401 if len(self.seen) == 1 else 200)

    def close(self) -> None:
        pass


def test_token_reused_and_fetched_again_after_a_401(
    stub: ExecPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    server = Server()
    transport = ExecCredentialTransport(server, stub, timeout=30)
    assert transport.handle_request(Request()).status_code == 200
    assert transport.handle_request(Request()).status_code == 200
    assert server.seen == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]
