"""``use_az_login``: a registry token from the Azure CLI, handed to ``podman login`` and ``helm registry login``.

``az acr login --name <registry> --expose-token --output json`` prints
``{"accessToken": "...", "loginServer": "..."}``; Azure Container Registry accepts that token as
the password of the fixed user ``00000000-0000-0000-0000-000000000000``. The token goes to the
logins on stdin only; it never appears on a command line, in a log line or in an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dagster_uc.errors import OperationError, UsageError
from dagster_uc.registry.credentials import Credentials

if TYPE_CHECKING:
    from dagster_uc.build import Podman

ACR_USERNAME = "00000000-0000-0000-0000-000000000000"
ACR_SUFFIX = ".azurecr.io"
AZ = "az"


def registry_host(registry: str) -> str:
    """``https://name.azurecr.io/team`` -> ``name.azurecr.io`` (scheme and path dropped)."""
    host = registry.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    return host.split("/", 1)[0]


def acr_name(registry: str) -> str:
    """The name ``az acr login --name`` wants: the registry host without ``.azurecr.io``."""
    host = registry_host(registry)
    return host[: -len(ACR_SUFFIX)] if host.lower().endswith(ACR_SUFFIX) else host


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.upper().startswith("ERROR"):
            return line
    return lines[-1] if lines else ""


class AzureCli:
    """Runs the Azure CLI (``az``) with argument lists."""

    def __init__(self, executable: str = AZ, env: Mapping[str, str] | None = None) -> None:
        self.executable = executable
        self.env = dict(env) if env is not None else None

    def acr_token(self, registry: str) -> str:
        """An access token for the registry, from ``az acr login --expose-token``."""
        if shutil.which(self.executable, path=(self.env or os.environ).get("PATH")) is None:
            raise UsageError(
                "use_az_login is true but the Azure CLI (az) is not installed or not on PATH; "
                "install it (https://aka.ms/azure-cli) or set use_az_login: false."
            )
        name = acr_name(registry)
        argv = [
            self.executable,
            "acr",
            "login",
            "--name",
            name,
            "--expose-token",
            "--output",
            "json",
        ]
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=self.env,
            check=False,
        )
        token = _parse_token(proc.stdout) if proc.returncode == 0 else None
        if proc.returncode != 0:
            detail = _last_line(proc.stderr)
            hint = " run 'az login' and check that you can access the registry."
            raise OperationError(
                f"az acr login --name {name} failed (exit {proc.returncode}): {detail or 'no error output'};{hint}"
            )
        if not token:
            raise OperationError(
                f"az acr login --name {name} printed no accessToken; update the Azure CLI and try again."
            )
        return token


def _parse_token(stdout: str) -> str | None:
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    token = data.get("accessToken") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def _helm_supports(helm: str, flag: str, env: Mapping[str, str] | None) -> bool:
    proc = subprocess.run(
        [helm, "registry", "login", "--help"],
        capture_output=True,
        text=True,
        errors="replace",
        env=dict(env) if env is not None else None,
        check=False,
    )
    return flag in proc.stdout


def helm_registry_login(
    helm: str,
    registry: str,
    username: str,
    password: str,
    tls_verify: bool = True,
    env: Mapping[str, str] | None = None,
) -> None:
    """``helm registry login`` with the password on stdin.

    Without TLS verification: ``--insecure``; when the registry answers in plain HTTP and this
    Helm has ``--plain-http`` (Helm 4), once more with that flag (Helm 3 falls back by itself).
    """
    if shutil.which(helm, path=(env or os.environ).get("PATH")) is None:
        raise UsageError(
            f"helm is not installed (or not on PATH): {helm}; install Helm 3 or 4 and try again."
        )
    host = registry_host(registry)
    base = [helm, "registry", "login", host, "--username", username, "--password-stdin"]
    attempts = [base] if tls_verify else [[*base, "--insecure"], [*base, "--plain-http"]]
    for index, argv in enumerate(attempts):
        proc = subprocess.run(
            argv,
            input=password + "\n",
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            check=False,
        )
        if proc.returncode == 0:
            return
        output = proc.stderr or proc.stdout
        retry = (
            index + 1 < len(attempts)
            and "HTTP response to HTTPS client" in output
            and _helm_supports(helm, "--plain-http", env)
        )
        if not retry:
            break
    detail = _last_line(output).replace(password, "***")
    raise OperationError(f"helm registry login to {host} failed (exit {proc.returncode}): {detail}")


def login_registry(
    registry: str,
    podman: Podman,
    helm: str | None = None,
    *,
    az: AzureCli | None = None,
    tls_verify: bool = True,
    use_sudo: bool = False,
    helm_env: Mapping[str, str] | None = None,
) -> Credentials:
    """Log podman (and helm, when ``helm`` names its executable) in to ``registry`` with one az
    token; returns that login for dagster-uc's own registry client.

    Pass ``helm`` only when the chart comes from the registry (``container_registry_chart_path``).
    With ``use_sudo`` podman writes the login to root's auth file, which this process cannot
    read: the registry client must use the returned credentials instead.
    """
    token = (az or AzureCli()).acr_token(registry)
    host = registry_host(registry)
    podman.login(host, ACR_USERNAME, token, tls_verify=tls_verify, use_sudo=use_sudo)
    if helm is not None:
        helm_registry_login(helm, host, ACR_USERNAME, token, tls_verify=tls_verify, env=helm_env)
    return Credentials(ACR_USERNAME, token, source="az acr login")
