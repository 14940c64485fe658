"""How dagster-uc finds and uses the cluster from the kubeconfig, as kubectl does: a KUBECONFIG
list of files (the first to name an entry wins, relative paths are relative to the file that
holds them), an unknown context, an unreachable API server, a bearer token from a file and
client certificates, against the emulator served over TLS by a private CA."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from stack.emulator import Emulator
from stack.emulator.server import Server, error_response
from stack.emulator.store import ApiError
from tests.e2e.conftest import VALUES_CM, Result, Stack

NAME = "demo-project--feat-hello"
SECURE_CONTEXT = "secure"
SECURE_NAMESPACE = "dagster"
TOKEN = "s3cr3t-token-for-the-emulator"


# --- a private CA and the emulator behind TLS ---------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A private CA with a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path, server_ips: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test-ca"))
        .issuer_name(name("test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, ca_key)

    def issue(stem: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(stem))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        write(stem, builder.sign(ca_key, hashes.SHA256()), key)

    issue(
        "server",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips),
            x509.DNSName("localhost"),
        ],
    )
    issue("client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return Pki(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


class SecureEmulator(Emulator):
    """The emulator over HTTPS, answering only requests that carry `token` as a bearer token
    or present a client certificate the CA signed; others get 401 with a Status body, as from
    kube-apiserver, or with `plain_401` a bare one, as from an authenticating proxy."""

    def __init__(self, pki: Pki, *, token: str | None, plain_401: bool = False) -> None:
        super().__init__(ready_delay=0.05)
        self.token = token
        self.plain_401 = plain_401
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(pki.server_cert, pki.server_key)
        self.tls.load_verify_locations(pki.ca)
        self.tls.verify_mode = ssl.CERT_OPTIONAL
        self.authenticated: list[str] = []  # how each answered request proved who it is

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if (
            self.token is not None
            and request.headers.get("Authorization") == f"Bearer {self.token}"
        ):
            self.authenticated.append("token")
        elif peer:
            self.authenticated.append("certificate")
        elif self.plain_401:
            return web.Response(status=401, text="Unauthorized")
        else:
            return error_response(ApiError(401, "Unauthorized", "Unauthorized"))
        response: web.StreamResponse = await handler(request)
        return response

    async def _astart(self) -> None:
        self._server = Server(self)
        app = self._server.app()
        app.middlewares.insert(0, self._authenticate)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._ctl_task = asyncio.get_running_loop().create_task(self.controllers.run())


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    return make_pki(directory)


def secure_emulator(
    pki: Pki, *, token: str | None, plain_401: bool = False
) -> Iterator[SecureEmulator]:
    emulator = SecureEmulator(pki, token=token, plain_401=plain_401)
    emulator.start()
    try:
        # One registered location, so a listing proves the client really read the cluster.
        emulator.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": VALUES_CM, "namespace": SECURE_NAMESPACE},
                "data": {"yaml": yaml.safe_dump({"deployments": [location()]})},
            }
        )
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def token_cluster(pki: Pki) -> Iterator[SecureEmulator]:
    yield from secure_emulator(pki, token=TOKEN)


@pytest.fixture
def cert_cluster(pki: Pki) -> Iterator[SecureEmulator]:
    yield from secure_emulator(pki, token=None)


def location() -> dict[str, Any]:
    return {
        "name": "secure-project--main",
        "image": {"repository": "registry.example/secure-project--main", "tag": "1.8.4-3"},
    }


def kubeconfig(path: Path, context: str, server: str, user: dict[str, Any], **cluster: Any) -> Path:
    """A kubeconfig file with one context (also the current one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, **cluster}}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def list_on(stack: Stack, *kubeconfigs: Path, context: str = SECURE_CONTEXT) -> Result:
    """`deployment list -o json` with KUBECONFIG naming `kubeconfigs` and `context` configured."""
    stack.write_config(kubernetes_context=context, namespace=SECURE_NAMESPACE)
    env = {"KUBECONFIG": os.pathsep.join(str(p) for p in kubeconfigs)}
    return stack.run("deployment", "list", "-o", "json", env=env)


def assert_listed(result: Result) -> None:
    assert result.returncode == 0, result.output
    assert "secure-project--main" in result.stdout, result.stdout


def assert_one_error(result: Result, code: int, *fragments: str) -> str:
    """Exit `code`, no traceback, one error sentence (after any progress lines) naming all
    `fragments`."""
    assert result.returncode == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0] == result.stderr.rstrip("\n").splitlines()[-1], (
        result.stderr
    )
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- a KUBECONFIG list ------------------------------------------------------------------------


def test_a_kubeconfig_list_is_searched_for_the_context(stack: Stack, tmp_path: Path) -> None:
    """The context lives in the last of three files (one missing, one about another cluster,
    whose current-context is another one): deploy (our client, Helm) and list find it."""
    other = kubeconfig(
        tmp_path / "a" / "config", "elsewhere", f"https://127.0.0.1:{closed_port()}", {}
    )
    env = {
        "KUBECONFIG": os.pathsep.join(
            [str(tmp_path / "missing" / "config"), str(other), str(stack.kube.kubeconfig)]
        )
    }

    stack.ok("deployment", "deploy", "--timeout", "60", env=env)

    assert stack.entry(NAME) is not None
    listed = stack.ok("deployment", "list", "-o", "json", env=env)
    assert [row["name"] for row in yaml.safe_load(listed.stdout)] == [NAME]


def test_the_first_file_naming_a_context_wins(
    stack: Stack, tmp_path: Path, token_cluster: SecureEmulator, pki: Pki
) -> None:
    user = {"token": TOKEN}
    first = kubeconfig(
        tmp_path / "a" / "config", SECURE_CONTEXT, token_cluster.url, user, **ca_of(pki)
    )
    second = kubeconfig(
        tmp_path / "b" / "config", SECURE_CONTEXT, f"https://127.0.0.1:{closed_port()}", user
    )

    assert_listed(list_on(stack, first, second))
    unreachable = list_on(stack, second, first)
    assert_one_error(unreachable, 1, "cannot reach the Kubernetes API server")


def test_relative_paths_are_relative_to_the_file_that_holds_them(
    stack: Stack, tmp_path: Path, token_cluster: SecureEmulator, pki: Pki
) -> None:
    """kubectl resolves certificate-authority, tokenFile and client certificates against the
    directory of the kubeconfig file that names them, not the first file of the list."""
    first = kubeconfig(
        tmp_path / "a" / "config", "elsewhere", f"https://127.0.0.1:{closed_port()}", {}
    )
    directory = tmp_path / "b"
    directory.mkdir()
    (directory / "ca.crt").write_bytes(pki.ca.read_bytes())
    (directory / "token").write_text(TOKEN + "\n")
    second = kubeconfig(
        directory / "config",
        SECURE_CONTEXT,
        token_cluster.url,
        {"tokenFile": "token"},
        **{"certificate-authority": "ca.crt"},
    )

    assert_listed(list_on(stack, first, second))
    assert token_cluster.authenticated and set(token_cluster.authenticated) == {"token"}


# --- wrong context, unreachable server --------------------------------------------------------


def test_an_unknown_context_is_one_sentence_naming_the_known_ones(stack: Stack) -> None:
    stack.write_config(kubernetes_context="no-such-context")

    result = stack.run("deployment", "deploy")

    line = assert_one_error(result, 2, "no-such-context", stack.kube.context)
    assert "kubernetes_context" in line
    assert stack.configmap(VALUES_CM) is None
    assert stack.tags(NAME) == []


def test_an_unreachable_api_server_stops_the_deploy_before_the_build(
    stack: Stack, tmp_path: Path
) -> None:
    config = kubeconfig(
        tmp_path / "down" / "config", "down", f"https://127.0.0.1:{closed_port()}", {"token": "x"}
    )
    stack.write_config(kubernetes_context="down")

    result = stack.run("deployment", "deploy", env={"KUBECONFIG": str(config)})

    assert_one_error(result, 1, "cannot reach the Kubernetes API server")
    assert stack.tags(NAME) == [], "nothing is built or pushed for a cluster that is not there"
    listed = stack.run("deployment", "list", env={"KUBECONFIG": str(config)})
    assert_one_error(listed, 1, "cannot reach the Kubernetes API server")


def test_no_kubeconfig_at_all_is_a_usage_error(stack: Stack, tmp_path: Path) -> None:
    result = stack.run(
        "deployment", "list", env={"KUBECONFIG": str(tmp_path / "nowhere" / "config")}
    )
    assert_one_error(result, 2, "No kubeconfig file found", "nowhere")


# --- credentials ------------------------------------------------------------------------------


def ca_of(pki: Pki) -> dict[str, str]:
    return {"certificate-authority": str(pki.ca)}


def test_a_bearer_token_from_a_token_file(
    stack: Stack, tmp_path: Path, token_cluster: SecureEmulator, pki: Pki
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = kubeconfig(
        tmp_path / "kube" / "config",
        SECURE_CONTEXT,
        token_cluster.url,
        {"tokenFile": str(token_file)},
        **ca_of(pki),
    )

    assert_listed(list_on(stack, config))
    assert set(token_cluster.authenticated) == {"token"}


def test_a_wrong_token_is_one_sentence_without_the_token(
    stack: Stack, tmp_path: Path, token_cluster: SecureEmulator, pki: Pki
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("wrong-token-value\n")
    config = kubeconfig(
        tmp_path / "kube" / "config",
        SECURE_CONTEXT,
        token_cluster.url,
        {"tokenFile": str(token_file)},
        **ca_of(pki),
    )

    result = list_on(stack, config)

    assert_one_error(result, 1, "the Kubernetes API answered 401: Unauthorized")
    assert "wrong-token-value" not in result.output


def test_a_bare_401_from_a_proxy_is_one_sentence(stack: Stack, tmp_path: Path, pki: Pki) -> None:
    """An authenticating proxy answers without a Kubernetes Status body: still an answer,
    not "cannot reach"."""
    for proxy in secure_emulator(pki, token=TOKEN, plain_401=True):
        config = kubeconfig(
            tmp_path / "kube" / "config",
            SECURE_CONTEXT,
            proxy.url,
            {"token": "wrong"},
            **ca_of(pki),
        )
        result = list_on(stack, config)
    assert_one_error(result, 1, "the Kubernetes API answered 401 Unauthorized")
    assert "cannot reach" not in result.output


@pytest.mark.parametrize("form", ["files", "data"])
def test_client_certificates(
    stack: Stack, tmp_path: Path, cert_cluster: SecureEmulator, pki: Pki, form: str
) -> None:
    if form == "files":
        user = {"client-certificate": str(pki.client_cert), "client-key": str(pki.client_key)}
        cluster = ca_of(pki)
    else:

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        user = {
            "client-certificate-data": b64(pki.client_cert),
            "client-key-data": b64(pki.client_key),
        }
        cluster = {"certificate-authority-data": b64(pki.ca)}
    config = kubeconfig(
        tmp_path / "kube" / "config", SECURE_CONTEXT, cert_cluster.url, user, **cluster
    )

    assert_listed(list_on(stack, config))
    assert set(cert_cluster.authenticated) == {"certificate"}


def test_without_a_client_certificate_the_server_refuses(
    stack: Stack, tmp_path: Path, cert_cluster: SecureEmulator, pki: Pki
) -> None:
    config = kubeconfig(
        tmp_path / "kube" / "config", SECURE_CONTEXT, cert_cluster.url, {}, **ca_of(pki)
    )
    assert_one_error(list_on(stack, config), 1, "the Kubernetes API answered 401")


def test_a_server_certificate_from_an_unknown_ca_is_refused(
    stack: Stack, tmp_path: Path, token_cluster: SecureEmulator
) -> None:
    config = kubeconfig(
        tmp_path / "kube" / "config", SECURE_CONTEXT, token_cluster.url, {"token": TOKEN}
    )
    result = list_on(stack, config)
    assert_one_error(result, 1, "cannot reach the Kubernetes API server")
    assert token_cluster.authenticated == []


@pytest.mark.parametrize("field", ["certificate-authority", "client-certificate", "tokenFile"])
def test_a_missing_file_the_context_names_is_one_sentence_naming_it(
    stack: Stack, tmp_path: Path, pki: Pki, field: str
) -> None:
    gone = str(tmp_path / "kube" / "gone.pem")
    user: dict[str, Any] = {"token": TOKEN}
    cluster: dict[str, Any] = ca_of(pki)
    if field == "certificate-authority":
        cluster = {field: gone}
    elif field == "client-certificate":
        user = {field: gone, "client-key": str(pki.client_key)}
    else:
        user = {field: gone}
    config = kubeconfig(
        tmp_path / "kube" / "config", SECURE_CONTEXT, "https://127.0.0.1:1", user, **cluster
    )

    assert_one_error(list_on(stack, config), 2, SECURE_CONTEXT, field, gone)
