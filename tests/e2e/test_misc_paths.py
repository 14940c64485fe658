"""Paths a team hits that the main suites leave out: `deployment check -o json`, the lifecycle
commands on Helm 3, `--use-sudo` with Debian's real sudo, a registry token that is no longer
accepted, a TLS registry signed by a private CA trusted through SSL_CERT_FILE, and `~` in
`docker_build_secrets.src`."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from stack.registry import LocalRegistry, push_many_tags
from tests.e2e.conftest import VALUES_CM, Stack
from tests.e2e.test_interrupts import TcpFront, relay
from tests.e2e.test_kubeconfig import Pki, make_pki
from tests.e2e.test_reliability import (
    assert_consistent,
    entry_tag,
    image_tag_of,
    one_error_line,
    workspace_text,
)

NAME = "demo-project--feat-hello"
UI = "demo-project:feat-hello"


def use_auth_file(stack: Stack, registry: LocalRegistry) -> None:
    """podman's per-user auth file (XDG_RUNTIME_DIR/containers/auth.json) with the registry's
    login, as `podman login` leaves it; dagster-uc's registry client reads the same file."""
    auth_dir = Path(stack.env["XDG_RUNTIME_DIR"]) / "containers"
    auth_dir.mkdir(parents=True, exist_ok=True)
    (auth_dir / "auth.json").write_text(registry.auth_file.read_text())


def registry_tags(registry: LocalRegistry, repository: str, **kwargs: Any) -> list[str]:
    response = httpx.get(
        f"{registry.url}/v2/{repository}/tags/list",
        headers=registry.admin_headers(repository),
        trust_env=False,
        **kwargs,
    )
    return [] if response.status_code == 404 else sorted(response.json().get("tags") or [])


# --- deployment check -o json -----------------------------------------------------------------


def test_check_as_json_for_a_started_and_a_failing_code_server(stack: Stack) -> None:
    stack.ok("deployment", "deploy", "--timeout", "60")

    started = stack.ok("deployment", "check", "-n", UI, "-t", "20", "-o", "json")

    report = json.loads(started.stdout)
    assert report["name"] == NAME
    assert report["started"] is True
    assert report["pods"] and report["ready"] == 1
    assert any("Started Dagster code server" in line for line in report["log"])

    broken = "demo-project--feat-broken"
    stack.emulator.hold_unready(stack.namespace, f"deployment={broken}")
    stack.checkout("feat/broken")
    stack.ok("deployment", "deploy", "--no-wait")

    failing = stack.run("deployment", "check", "-t", "3", "-o", "json")

    assert failing.returncode == 1, failing.output
    report = json.loads(failing.stdout)  # stdout stays one JSON document
    assert report["name"] == broken
    assert report["started"] is False
    assert "did not report that it started within 3 s" in one_error_line(failing.stderr)


# --- the lifecycle on Helm 3 ------------------------------------------------------------------


@pytest.mark.parametrize("helm_major", [3], indirect=True, ids=["helm3"])
def test_the_lifecycle_on_helm_3(stack: Stack, tmp_path: Path) -> None:
    """deploy, redeploy, a second branch, rollback, delete, revive, prune and delete --all,
    with Helm 3 as `helm`: after each, values, workspace, release and lock agree."""
    version = subprocess.run(
        ["helm", "version", "--short"], env=stack.env, capture_output=True, text=True, check=True
    ).stdout
    assert version.startswith("v3."), version
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    stack.git("remote", "add", "origin", str(bare))

    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.git("push", "-q", "origin", "feat/hello")
    stack.git("commit", "-q", "--allow-empty", "-m", "second")
    stack.ok("deployment", "deploy", "--timeout", "60")
    assert entry_tag(stack, NAME) == "1.8.4-1"
    assert_consistent(stack)

    stack.checkout("feat/gone")  # never pushed: prune removes it
    stack.ok("deployment", "deploy", "--timeout", "60")
    stack.checkout("feat/hello")
    assert_consistent(stack)

    stack.ok("deployment", "rollback", "-n", NAME, "--timeout", "60")
    assert image_tag_of(stack, NAME) == "1.8.4-0"
    assert_consistent(stack)

    stack.ok("deployment", "delete", "-n", NAME)
    assert stack.entry(NAME) is None and stack.deployment(NAME) is None
    assert_consistent(stack)

    stack.ok("deployment", "revive", "-n", NAME, "-t", "1.8.4-1", "--timeout", "60")
    assert image_tag_of(stack, NAME) == "1.8.4-1"
    assert_consistent(stack)

    pruned = stack.ok("deployment", "prune")
    assert "removed demo-project--feat-gone" in pruned.stdout
    assert stack.locations() == [UI]
    assert_consistent(stack)

    stack.ok("deployment", "delete", "--all", "--yes")
    assert stack.values()["deployments"] == []
    assert stack.locations() == []


# --- --use-sudo with the real sudo ------------------------------------------------------------


def test_use_sudo_with_debians_sudo(stack: Stack) -> None:
    """sudo resets the environment (env_reset, secure_path): podman still gets the build
    variable it needs through --preserve-env, and the image is built and pushed."""
    sudo = shutil.which("sudo")
    assert sudo is not None, "sudo is a system dependency (scripts/install-system-deps.sh)"
    if subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("this user may not run sudo without a password")
    dockerfile = stack.project / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text() + 'ARG SUDO_CHECK\nRUN test "$SUDO_CHECK" = "kept-by-sudo"\n'
    )
    stack.git("commit", "-qam", "the build needs SUDO_CHECK")
    # This sandbox's podman needs chroot isolation (tool_env's BUILDAH_ISOLATION), which sudo's
    # env_reset drops like any other variable; passing it as a build variable keeps it.
    stack.write_config(docker_env_vars=["SUDO_CHECK", "BUILDAH_ISOLATION"])

    result = stack.run(
        "deployment", "deploy", "--use-sudo", "--timeout", "60", env={"SUDO_CHECK": "kept-by-sudo"}
    )

    assert result.returncode == 0, result.output
    assert "kept-by-sudo" not in result.output
    assert stack.tags(NAME) == ["1.8.4-0"]
    assert entry_tag(stack, NAME) == "1.8.4-0"
    assert_consistent(stack)


# --- a registry token that is no longer accepted -----------------------------------------------


class OneUseTokens:
    """A reverse proxy in front of a token-auth registry that accepts each bearer token for one
    request: a later request with the same token reaches the registry without it, and the
    registry answers 401 with its own challenge, as for a token that has expired."""

    HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length"})

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.used: set[str] = set()
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self.host = ""
        threading.Thread(target=self._run, daemon=True).start()
        assert self._started.wait(30), "the proxy did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.host = f"127.0.0.1:{port}"

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP}
        token = headers.get("Authorization", "")
        if token.startswith("Bearer "):
            if token in self.used:
                del headers["Authorization"]
                self.refused += 1
            self.used.add(token)
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as answer,
        ):
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in self.HOP}
            return web.Response(status=answer.status, body=body, headers=kept)

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def token_registry() -> Iterator[LocalRegistry]:
    with LocalRegistry("token") as registry:
        yield registry


def test_a_token_the_registry_no_longer_accepts_is_fetched_again(
    stack: Stack, token_registry: LocalRegistry
) -> None:
    """`image prune` makes many requests with one cached token; each token is accepted once,
    so every later request meets a refused token: the client fetches a new one each time
    and the prune completes."""
    repository = f"{stack.prefix}/{NAME}"
    tags = [f"1.8.4-{n}" for n in range(6)]
    push_many_tags(token_registry, repository, tags, distinct_digests=True)
    proxy = OneUseTokens(token_registry.url)
    try:
        auth_dir = Path(stack.env["XDG_RUNTIME_DIR"]) / "containers"
        auth_dir.mkdir(parents=True, exist_ok=True)
        auths = {"auths": {proxy.host: token_registry.auth_entry()}}
        (auth_dir / "auth.json").write_text(json.dumps(auths))
        stack.write_config(container_registry=proxy.host)
        assert token_registry.token_server is not None
        grants_before = len(token_registry.token_server.requests)

        result = stack.run("image", "prune", "--keep", "2")
    finally:
        proxy.close()

    assert result.returncode == 0, result.output
    assert proxy.refused >= 2, "no request met a refused token"
    assert len(token_registry.token_server.requests) - grants_before > proxy.refused
    assert registry_tags(token_registry, repository) == ["1.8.4-4", "1.8.4-5"]


# --- a TLS registry with a private CA, trusted through SSL_CERT_FILE ----------------------------


def host_address() -> str | None:
    """This machine's address on its network (not loopback: the test is about a registry
    elsewhere, which dagster-uc only ever speaks HTTPS to), or None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if ipaddress.ip_address(address).is_loopback else address


class TlsFront(TcpFront):
    """TLS with a certificate of a private CA on `address`, relayed as plain TCP to a
    registry: a registry with TLS that only SSL_CERT_FILE makes trusted."""

    def __init__(self, address: str, upstream: str, pki: Pki) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(pki.server_cert, pki.server_key)
        super().__init__(address)

    def serve(self, conn: socket.socket) -> None:
        try:
            client = self.tls.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()  # an untrusting client hung up during the handshake
            return
        server = socket.create_connection(self.upstream)
        threading.Thread(target=relay, args=(server, client), daemon=True).start()
        relay(client, server)


class RelativeUrlRegistry(LocalRegistry):
    """Upload locations relative to the request, so they keep the scheme of the TLS front."""

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        config["http"]["relativeurls"] = True
        return config


def test_a_tls_registry_with_a_private_ca_trusted_through_ssl_cert_file(
    stack: Stack, tmp_path: Path
) -> None:
    address = host_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to serve TLS on")
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki", server_ips=(address,))
    with contextlib.ExitStack() as cleanup:
        registry = cleanup.enter_context(RelativeUrlRegistry())
        front = TlsFront(address, registry.host, pki)
        cleanup.callback(front.close)
        stack.write_config(container_registry=front.host, container_registry_insecure=False)
        workspace_before = workspace_text(stack)

        untrusted = stack.run("deployment", "deploy", "--timeout", "60")

        assert untrusted.returncode == 1, untrusted.output
        line = one_error_line(untrusted.stderr)
        assert front.host in line and "certificate" in line.lower(), line
        assert stack.configmap(VALUES_CM) is None
        assert workspace_text(stack) == workspace_before

        trusted = {"SSL_CERT_FILE": str(pki.ca)}
        stack.ok("deployment", "deploy", "--timeout", "60", env=trusted)

        assert registry_tags(registry, f"{stack.prefix}/{NAME}") == ["1.8.4-0"]
    assert entry_tag(stack, NAME) == "1.8.4-0"
    assert_consistent(stack)


# --- ~ in docker_build_secrets.src ------------------------------------------------------------


def test_a_build_secret_file_under_home(stack: Stack) -> None:
    home = Path(stack.env["HOME"])
    (home / ".secrets").mkdir()
    (home / ".secrets" / "pip-token").write_text("from-home\n")
    dockerfile = stack.project / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text()
        + 'RUN --mount=type=secret,id=pip_token test "$(cat /run/secrets/pip_token)" = from-home\n'
    )
    stack.git("commit", "-qam", "the build reads a secret")
    stack.write_config(docker_build_secrets=[{"id": "pip_token", "src": "~/.secrets/pip-token"}])

    stack.ok("deployment", "deploy", "--timeout", "60")  # the RUN step checks the secret

    assert stack.tags(NAME) == ["1.8.4-0"]

    stack.write_config(docker_build_secrets=[{"id": "pip_token", "src": "~/.secrets/missing"}])
    missing = stack.run("deployment", "deploy")
    assert missing.returncode == 2, missing.output
    line = one_error_line(missing.stderr)
    assert str(home / ".secrets" / "missing") in line, line
