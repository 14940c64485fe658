"""Kubeconfig exec credential plugins (kubelogin for AKS with Azure AD, EKS, GKE), as kubectl
runs them.

The plugin's stderr goes to the terminal (as it comes), so a device-code prompt ("open https://microsoft.com/
devicelogin and enter the code ...") reaches the user; its stdin is the terminal when the
plugin may be interactive. It must answer within a timeout (``DAGSTER_UC_EXEC_TIMEOUT``
seconds, default 300), otherwise the command stops with one sentence instead of hanging.
The token is reused until its ``expirationTimestamp`` and fetched again after a 401.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster_uc.errors import OperationError, UsageError
from dagster_uc.proxies import Transport

API_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
    "client.authentication.k8s.io/v1alpha1",
)
DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_ENV = "DAGSTER_UC_EXEC_TIMEOUT"
#: A token this close to its expiry is fetched again before use.
EXPIRY_MARGIN_S = 10.0


@dataclass(frozen=True)
class ExecPlugin:
    """The ``user.exec`` entry of a kubeconfig."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1beta1"
    interactive_mode: str = "IfAvailable"
    install_hint: str = ""
    cluster: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ExecToken:
    token: str = field(repr=False)
    expires_at: float | None = None  # time.time() seconds; None: until a 401


def plugin_from_kubeconfig(
    user: Mapping[str, Any], cluster: Mapping[str, Any], context: str
) -> ExecPlugin | None:
    """The exec plugin of a kubeconfig user entry, or None when it has none."""
    spec = user.get("exec")
    if not spec:
        return None
    if not isinstance(spec, Mapping) or not spec.get("command"):
        raise UsageError(f"The exec entry of the user of context '{context}' names no command.")
    api_version = str(spec.get("apiVersion") or "")
    if api_version not in API_VERSIONS:
        raise UsageError(
            f"The credential plugin of context '{context}' asks for apiVersion "
            f"'{api_version}'; supported: {', '.join(API_VERSIONS)}."
        )
    info = None
    if spec.get("provideClusterInfo"):
        keys = ("server", "certificate-authority-data", "insecure-skip-tls-verify", "proxy-url")
        info = {k: cluster[k] for k in keys if k in cluster}
        extension = next(
            (
                e.get("extension")
                for e in cluster.get("extensions") or []
                if e.get("name") == "client.authentication.k8s.io/exec"
            ),
            None,
        )
        if extension is not None:
            info["config"] = extension
    return ExecPlugin(
        command=str(spec["command"]),
        args=tuple(str(a) for a in spec.get("args") or ()),
        env=tuple((str(e["name"]), str(e.get("value", ""))) for e in spec.get("env") or ()),
        api_version=api_version,
        interactive_mode=str(spec.get("interactiveMode") or "IfAvailable"),
        install_hint=str(spec.get("installHint") or "").strip(),
        cluster=info,
    )


def exec_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    environ = os.environ if environ is None else environ
    raw = environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise UsageError(f"{TIMEOUT_ENV} must be a number of seconds above 0, not '{raw}'.")
    return value


def _parse_expiry(value: Any) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _relay_stderr(fd: int) -> None:
    """The plugin's stderr to ours as it comes, through `sys.stderr` so that a live progress
    view prints it above itself instead of drawing over a device-code prompt."""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(4096):
            sys.stderr.write(chunk.decode(errors="replace"))
            sys.stderr.flush()


def run_plugin(
    plugin: ExecPlugin,
    *,
    timeout: float,
    environ: Mapping[str, str] | None = None,
    interactive: bool | None = None,
) -> ExecToken:
    """Run the plugin once: its stderr to ours, its stdout parsed as an ExecCredential."""
    if interactive is None:
        interactive = plugin.interactive_mode != "Never" and sys.stdin.isatty()
    if plugin.interactive_mode == "Always" and not interactive:
        raise UsageError(
            f"The credential plugin {plugin.command} needs a terminal (interactiveMode: Always); "
            "run the command in a terminal."
        )
    spec: dict[str, Any] = {"interactive": interactive}
    if plugin.cluster is not None:
        spec["cluster"] = plugin.cluster
    env = dict(os.environ if environ is None else environ)
    env.update(plugin.env)
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec}
    )
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [plugin.command, *plugin.args],
            stdin=None if interactive else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=write_fd,
            env=env,
        )
    except OSError as exc:
        os.close(read_fd)
        hint = f" {plugin.install_hint}" if plugin.install_hint else ""
        raise UsageError(
            f"The kubeconfig's credential plugin {plugin.command} cannot be run "
            f"({exc.strerror or exc}); install it or fix the user's exec entry.{hint}"
        ) from None
    finally:
        os.close(write_fd)
    relay = threading.Thread(target=_relay_stderr, args=(read_fd,), daemon=True)
    relay.start()
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise OperationError(
            f"The credential plugin {plugin.command} did not hand out a token within "
            f"{timeout:g} s (finish its login prompt sooner, or raise {TIMEOUT_ENV})."
        ) from None
    except KeyboardInterrupt:
        proc.kill()
        proc.communicate()
        raise
    finally:
        relay.join(timeout=1)
    if proc.returncode != 0:
        raise OperationError(
            f"The credential plugin {plugin.command} failed (exit {proc.returncode}); "
            "its own messages are above."
        )
    try:
        status = json.loads(stdout)["status"]
        token = status.get("token")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise OperationError(
            f"The credential plugin {plugin.command} printed no ExecCredential with a status."
        ) from None
    if not token:
        raise OperationError(
            f"The credential plugin {plugin.command} returned no token (client certificates "
            "from credential plugins are not supported)."
        )
    return ExecToken(str(token), _parse_expiry(status.get("expirationTimestamp")))


class ExecCredentialTransport:
    """Adds the plugin's bearer token to every request; runs the plugin once per token (also
    with the lease renewer's thread asking at the same time) and again after a 401."""

    def __init__(self, inner: Transport, plugin: ExecPlugin, timeout: float) -> None:
        self.inner = inner
        self.plugin = plugin
        self.timeout = timeout
        self._token: ExecToken | None = None
        self._lock = threading.Lock()

    def _current(self, stale: ExecToken | None = None) -> ExecToken:
        with self._lock:
            token = self._token
            fresh = token is not None and token is not stale
            if fresh and token is not None and token.expires_at is not None:
                fresh = token.expires_at - EXPIRY_MARGIN_S > time.time()
            if not fresh or token is None:
                token = self._token = run_plugin(self.plugin, timeout=self.timeout)
            return token

    def handle_request(self, request: Any) -> Any:
        request.read()
        token = self._current()
        request.headers["Authorization"] = f"Bearer {token.token}"
        response = self.inner.handle_request(request)
        if response.status_code == 401:
            response.close()
            token = self._current(stale=token)
            request.headers["Authorization"] = f"Bearer {token.token}"
            response = self.inner.handle_request(request)
        return response

    def close(self) -> None:
        self.inner.close()
