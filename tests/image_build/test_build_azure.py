"""use_az_login: a fake ``az`` on PATH, the real podman and helm against an htpasswd registry."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_uc.azure import ACR_USERNAME, AzureCli, login_registry
from dagster_uc.build import Podman
from dagster_uc.errors import OperationError, UsageError
from tests.image_build.conftest import Registry, running_registry

FAKE_AZ = """#!{python}
import json, os, sys
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
mode = os.environ.get("FAKE_AZ_MODE", "ok")
if mode == "fail":
    sys.stderr.write("WARNING: something\\nERROR: Please run 'az login' to setup account.\\n")
    sys.exit(1)
if mode == "garbage":
    print("not json")
    sys.exit(0)
print(json.dumps({{"accessToken": os.environ["FAKE_AZ_TOKEN"], "loginServer": sys.argv[4] + ".azurecr.io"}}))
"""


@pytest.fixture
def fake_az(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``az`` first on PATH; returns the file its argument lists are logged to."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "az"
    script.write_text(FAKE_AZ.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "az-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AZ_LOG", str(log))
    monkeypatch.setenv("FAKE_AZ_TOKEN", f"tok-{uuid.uuid4().hex}")
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_acr_token_runs_az_with_the_registry_name(fake_az: Path) -> None:
    token = AzureCli().acr_token("myregistry.azurecr.io")
    assert token == os.environ["FAKE_AZ_TOKEN"]
    assert _calls(fake_az) == [
        ["acr", "login", "--name", "myregistry", "--expose-token", "--output", "json"]
    ]


def test_az_failure_is_one_clear_sentence(fake_az: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_AZ_MODE", "fail")
    with pytest.raises(OperationError) as err:
        AzureCli().acr_token("myregistry.azurecr.io")
    message = str(err.value)
    assert message.startswith("az acr login --name myregistry failed (exit 1): ERROR: Please run")
    assert "run 'az login'" in message and "\n" not in message


def test_az_garbage_output(fake_az: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_AZ_MODE", "garbage")
    with pytest.raises(OperationError, match="printed no accessToken"):
        AzureCli().acr_token("myregistry.azurecr.io")


def test_az_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match=r"Azure CLI \(az\) is not installed"):
        AzureCli().acr_token("myregistry.azurecr.io")


@pytest.fixture
def acr_like_registry(tmp_path: Path, fake_az: Path) -> Iterator[tuple[Registry, str]]:
    """An htpasswd registry whose only user is ACR's fixed user, password = the fake az token."""
    token = os.environ["FAKE_AZ_TOKEN"]
    with running_registry(tmp_path / "acr", (ACR_USERNAME, token)) as reg:
        yield reg, token


@pytest.mark.e2e
@pytest.mark.parametrize("helm_name", ["helm3", "helm4"])
def test_login_registry_logs_podman_and_helm_in_with_one_token(
    acr_like_registry: tuple[Registry, str],
    fake_az: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helm_name: str,
) -> None:
    from stack.tools import ensure_tools

    registry, token = acr_like_registry
    helm = str(ensure_tools().bin_dir / helm_name)
    helm_config = tmp_path / "helm-registry.json"
    monkeypatch.setenv("HELM_REGISTRY_CONFIG", str(helm_config))
    commands: list[str] = []

    login_registry(registry.host, Podman(on_command=commands.append), helm=helm, tls_verify=False)

    assert _calls(fake_az) == [
        ["acr", "login", "--name", registry.host, "--expose-token", "--output", "json"]
    ]
    podman_auth = json.loads(Path(os.environ["REGISTRY_AUTH_FILE"]).read_text())
    assert registry.host in podman_auth["auths"]
    assert registry.host in json.loads(helm_config.read_text())["auths"]
    assert all(token not in c for c in commands)


@pytest.mark.e2e
def test_login_registry_rejected_token(
    acr_like_registry: tuple[Registry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, _token = acr_like_registry
    monkeypatch.setenv("FAKE_AZ_TOKEN", "tok-wrong-" + uuid.uuid4().hex)
    with pytest.raises(OperationError, match=r"podman login to .* failed") as err:
        login_registry(registry.host, Podman(), tls_verify=False)
    assert os.environ["FAKE_AZ_TOKEN"] not in str(err.value)
