"""A real CNCF distribution registry (Debian's ``docker-registry``) on a free loopback port.

``LocalRegistry(auth="none" | "htpasswd" | "token", tls=False, delete_enabled=True)`` is a
context manager: filesystem storage in a temp dir, deletes enabled, ready when ``/v2/``
answers, stopped on exit. The ``token`` variant runs a small token server in a thread that
issues RS256 JWTs signed with a key whose self-signed certificate is the registry's
``rootcertbundle`` (needs the ``cryptography`` package).

``push_many_tags`` writes one tiny (but real, pullable) image and tags it many times through
the HTTP API, without podman.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import httpx

REGISTRY_BIN = os.environ.get("DAGSTER_UC_REGISTRY_BIN", "/usr/bin/docker-registry")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

AuthMode = Literal["none", "htpasswd", "token"]


def registry_process_env() -> dict[str, str]:
    """The caller's environment minus REGISTRY_*: docker-registry reads every such variable
    as a config override (podman's REGISTRY_AUTH_FILE would stop it from starting)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_server(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A server process in its own session, its output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


def stop_server(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a server started by :func:`spawn_server` (kill it after 10 s)."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd line (docker-registry accepts only bcrypt)."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd:
        out = subprocess.run(
            [htpasswd, "-Bbn", "-C", "4", username, password],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()
    import bcrypt

    return f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}"


# --------------------------------------------------------------------------- token server


class _TokenIssuer:
    """Signs registry bearer tokens (RS256, ``kid`` = libtrust key id of the public key)."""

    def __init__(self, workdir: Path, issuer: str, service: str) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.issuer = issuer
        self.service = service
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = workdir / "token-root.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
        self.kid = ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))

    def token(self, subject: str, access: list[dict[str, Any]], expires_in: int = 300) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)


def parse_scopes(scopes: list[str]) -> list[dict[str, Any]]:
    """``repository:a/b:pull,push`` -> [{"type": "repository", "name": "a/b", "actions": [...]}]."""
    access = []
    for scope in scopes:
        for item in scope.split(" "):
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
    return access


class _TokenServer:
    """The token realm: GET with Basic auth (docker/podman) or an OAuth2 POST with a refresh token."""

    def __init__(self, issuer: _TokenIssuer, username: str, password: str) -> None:
        self.issuer = issuer
        self.username = username
        self.password = password
        self.identity_token = "refresh-" + secrets.token_hex(8)
        self.requests: list[dict[str, Any]] = []
        self.expires_in = 300
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _grant(self, subject: str | None, scopes: list[str]) -> None:
                access = parse_scopes(scopes) if subject else []
                token = server.issuer.token(subject or "", access, server.expires_in)
                self._answer(
                    200, {"token": token, "access_token": token, "expires_in": server.expires_in}
                )

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                header = self.headers.get("Authorization", "")
                server.requests.append({"method": "GET", "scope": query.get("scope", [])})
                subject = None
                if header.startswith("Basic "):
                    user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
                    if (user, pw) != (server.username, server.password):
                        self._answer(401, {"details": "wrong username or password"})
                        return
                    subject = user
                self._grant(subject, query.get("scope", []))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                server.requests.append({"method": "POST", "scope": form.get("scope", [])})
                grant = form.get("grant_type", [""])[0]
                refresh_ok = grant == "refresh_token" and form.get("refresh_token") == [
                    server.identity_token
                ]
                user_pw = (form.get("username", [""])[0], form.get("password", [""])[0])
                password_ok = grant == "password" and user_pw == (server.username, server.password)
                if refresh_ok or password_ok:
                    self._grant(server.username, form.get("scope", []))
                else:
                    self._answer(401, {"details": "invalid grant"})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# --------------------------------------------------------------------------- registry


def _self_signed_tls(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost (used as its own CA)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = workdir / "tls.crt"
    key_path = workdir / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class LocalRegistry:
    """A docker-registry process on 127.0.0.1:<free port>; use as a context manager."""

    def __init__(
        self,
        auth: AuthMode = "none",
        *,
        tls: bool = False,
        delete_enabled: bool = True,
        username: str = "tester",
        password: str | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.auth = auth
        self.tls = tls
        self.delete_enabled = delete_enabled
        self.username = username if auth != "none" else None
        self.password = (password or "pw-" + secrets.token_hex(8)) if auth != "none" else None
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="dagster-uc-registry-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.token_server: _TokenServer | None = None
        self._issuer: _TokenIssuer | None = None
        self.tls_cert: Path | None = None
        self.auth_file = self.workdir / "auth.json"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": self.delete_enabled},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.tls:
            cert, key = _self_signed_tls(self.workdir)
            self.tls_cert = cert
            config["http"]["tls"] = {"certificate": str(cert), "key": str(key)}
        if self.auth == "htpasswd":
            assert self.username and self.password
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(_htpasswd_line(self.username, self.password) + "\n")
            config["auth"] = {"htpasswd": {"realm": "dagster-uc-test", "path": str(htpasswd)}}
        elif self.auth == "token":
            assert self.token_server and self._issuer
            config["auth"] = {
                "token": {
                    "realm": self.token_server.url,
                    "service": self._issuer.service,
                    "issuer": self._issuer.issuer,
                    "rootcertbundle": str(self._issuer.cert_path),
                }
            }
        return config

    def start(self) -> LocalRegistry:
        if self.auth == "token":
            self._issuer = _TokenIssuer(self.workdir, "dagster-uc-test-issuer", "local-registry")
            assert self.username and self.password
            self.token_server = _TokenServer(self._issuer, self.username, self.password)
            self.token_server.start()
        for _attempt in range(5):
            self.port = free_port()
            config_path = self.workdir / "config.yml"
            config_path.write_text(json.dumps(self._config(), indent=2))  # JSON is YAML
            self.process = spawn_server(
                [REGISTRY_BIN, "serve", str(config_path)], self.log_path, registry_process_env()
            )
            if self._wait_ready():
                self._write_auth_file()
                return self
            self._kill()
        raise RuntimeError(f"docker-registry did not start; see {self.log_path}")

    def _wait_ready(self, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        with httpx.Client(verify=False, timeout=2, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    response = client.get(self.url + "/v2/")
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if response.status_code in (200, 401):
                    return True
                time.sleep(0.05)
        return False

    def _write_auth_file(self) -> None:
        auths: dict[str, Any] = {}
        if self.username and self.password:
            raw = f"{self.username}:{self.password}".encode()
            auths[self.host] = {"auth": base64.b64encode(raw).decode()}
        self.auth_file.write_text(json.dumps({"auths": auths}, indent=2))

    def auth_entry(self, password: str | None = None) -> dict[str, str]:
        """An ``auths`` entry (podman/docker format) for this registry."""
        raw = f"{self.username}:{password if password is not None else self.password}".encode()
        return {"auth": base64.b64encode(raw).decode()}

    @property
    def identity_token(self) -> str | None:
        """A refresh token the token server accepts (``identitytoken`` in auth files)."""
        return self.token_server.identity_token if self.token_server else None

    def admin_headers(self, repository: str) -> dict[str, str]:
        """Authorization with full access to ``repository`` (for fixtures, not for the product)."""
        if self.auth == "htpasswd":
            raw = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if self.auth == "token":
            assert self._issuer is not None
            access = [{"type": "repository", "name": repository, "actions": ["*"]}]
            return {"Authorization": "Bearer " + self._issuer.token("admin", access)}
        return {}

    def _kill(self) -> None:
        stop_server(self.process)
        self.process = None

    def stop(self) -> None:
        self._kill()
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- proxy

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "content-length",
    "content-encoding",
}


@dataclass
class Fault:
    """Answer the next ``count`` requests whose path contains ``path_contains`` with ``status``."""

    status: int
    count: int = 1
    path_contains: str = "/v2/"
    close_connection: bool = False
    method: str | None = None  # only requests with this method (None: any)
    headers: tuple[tuple[str, str], ...] = ()
    code: str = "UNAVAILABLE"
    message: str = "injected fault"


class PaginatingProxy:
    """A reverse proxy in front of a real registry, for what Debian's registry cannot do.

    docker-registry 2.8 answers ``/v2/<name>/tags/list`` in one unsorted page and ignores
    ``n``/``last``; registries such as distribution 3, Docker Hub, GHCR, Harbor and ACR page
    it. This proxy pages tag lists the way the distribution spec says (lexical order, ``n``
    capped at ``max_page``, ``default_page`` when ``n`` is absent, ``Link: <...>; rel="next"``)
    and can inject faults (5xx answers, dropped connections). Everything else, including
    authentication challenges, goes to the real registry unchanged. It counts requests.
    """

    def __init__(
        self,
        upstream: str,
        *,
        max_page: int = 100,
        default_page: int | None = 100,
        page_tags: bool = True,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.page_tags = page_tags
        self.max_page = max_page
        self.default_page = default_page
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60, verify=False, trust_env=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # one write per response, no Nagle: otherwise delayed ACKs add ~40 ms per request
            disable_nagle_algorithm = True
            wbufsize = 1 << 16

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.wfile.flush()

            def _read_body(self) -> bytes:
                """The request body, also when podman sends it chunked (blob uploads)."""
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._read_body()
                proxy.requests.append((self.command, self.path))
                fault = proxy._take_fault(self.command, self.path)
                if fault is not None:
                    if fault.close_connection:
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    error = {"errors": [{"code": fault.code, "message": fault.message}]}
                    self._send(
                        fault.status,
                        [("Content-Type", "application/json"), *fault.headers],
                        json.dumps(error).encode(),
                    )
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                split = urllib.parse.urlsplit(self.path)
                is_tags = (
                    proxy.page_tags
                    and split.path.startswith("/v2/")
                    and split.path.endswith("/tags/list")
                )
                upstream_path = split.path if is_tags else self.path
                answer = proxy._client.request(
                    self.command, proxy.upstream + upstream_path, headers=headers, content=body
                )
                out_headers = list(answer.headers.multi_items())
                out_body = answer.content
                if is_tags and self.command == "GET" and answer.status_code == 200:
                    out_headers, out_body = proxy._page(split, answer)
                self._send(answer.status_code, out_headers, out_body)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.count > 0
                    and fault.path_contains in path
                    and fault.method in (None, method)
                ):
                    fault.count -= 1
                    return fault
        return None

    def _page(
        self, split: urllib.parse.SplitResult, answer: httpx.Response
    ) -> tuple[list[tuple[str, str]], bytes]:
        data = answer.json()
        tags = sorted(data.get("tags") or [])
        query = urllib.parse.parse_qs(split.query)
        last = query.get("last", [None])[0]
        n_text = query.get("n", [None])[0]
        n = int(n_text) if n_text else self.default_page
        if n is not None:
            n = min(n, self.max_page)
        if last is not None:
            tags = [t for t in tags if t > last]
        page = tags if n is None else tags[:n]
        headers = [("Content-Type", "application/json")]
        if n is not None and len(tags) > n and page:
            link = f"{split.path}?last={urllib.parse.quote(page[-1])}&n={n}"
            headers.append(("Link", f'<{link}>; rel="next"'))
        return headers, json.dumps({"name": data.get("name"), "tags": page}).encode()

    def count(self, path_contains: str = "/v2/") -> int:
        return sum(1 for _, path in self.requests if path_contains in path)

    def start(self) -> PaginatingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._client.close()

    def __enter__(self) -> PaginatingProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- pushing


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class TinyImage:
    layer: bytes
    layer_diff_id: str
    config: bytes


def tiny_image(label: str = "dagster-uc test image") -> TinyImage:
    """A real single-layer linux/amd64 image holding one text file."""
    content = (label + "\n").encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    layer = gzip.compress(tar_bytes, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Labels": {"dagster-uc.test": label}},
            "rootfs": {"type": "layers", "diff_ids": [_digest(tar_bytes)]},
            "history": [{"created_by": "dagster-uc stack.registry"}],
        },
        sort_keys=True,
    ).encode()
    return TinyImage(layer=layer, layer_diff_id=_digest(tar_bytes), config=config)


def _registry_target(
    registry: LocalRegistry | str, repository: str, auth: tuple[str, str] | None
) -> tuple[str, dict[str, str]]:
    if not isinstance(registry, str):  # LocalRegistry, or another registry object alike
        return registry.url, registry.admin_headers(repository)
    base = registry if "://" in registry else f"http://{registry}"
    if auth is not None:
        raw = f"{auth[0]}:{auth[1]}".encode()
        return base, {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    return base, {}


def _upload_blob(client: httpx.Client, base: str, repository: str, data: bytes) -> str:
    digest = _digest(data)
    head = client.head(f"{base}/v2/{repository}/blobs/{digest}")
    if head.status_code == 200:
        return digest
    started = client.post(f"{base}/v2/{repository}/blobs/uploads/")
    started.raise_for_status()
    location = urllib.parse.urljoin(base + "/", started.headers["Location"])
    sep = "&" if "?" in location else "?"
    done = client.put(
        f"{location}{sep}digest={urllib.parse.quote(digest)}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    done.raise_for_status()
    return digest


def push_many_tags(
    registry: LocalRegistry | str,
    repository: str,
    tags: list[str],
    *,
    auth: tuple[str, str] | None = None,
    distinct_digests: bool = False,
    workers: int = 8,
) -> dict[str, str]:
    """Creates ``repository:<tag>`` for every tag; returns {tag: manifest digest}.

    The blobs are uploaded once; each tag is one manifest PUT. With ``distinct_digests`` every
    tag gets its own manifest (an annotation names the tag), otherwise all tags share one.
    """
    base, headers = _registry_target(registry, repository, auth)
    image = tiny_image()
    with httpx.Client(headers=headers, timeout=60, verify=False, trust_env=False) as client:
        config_digest = _upload_blob(client, base, repository, image.config)
        layer_digest = _upload_blob(client, base, repository, image.layer)

        def manifest(tag: str | None) -> bytes:
            body: dict[str, Any] = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(image.config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest,
                        "size": len(image.layer),
                    }
                ],
            }
            if tag is not None:
                body["annotations"] = {"org.dagster-uc.test.tag": tag}
            return json.dumps(body, sort_keys=True).encode()

        shared = manifest(None)

        def put(tag: str) -> tuple[str, str]:
            data = manifest(tag) if distinct_digests else shared
            response = client.put(
                f"{base}/v2/{repository}/manifests/{tag}",
                content=data,
                headers={"Content-Type": OCI_MANIFEST},
            )
            response.raise_for_status()
            return tag, response.headers.get("Docker-Content-Digest") or _digest(data)

        if workers <= 1 or len(tags) < 16:
            return dict(put(tag) for tag in tags)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(pool.map(put, tags))
