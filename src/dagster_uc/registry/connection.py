"""The HTTP side of the registry client: transport, proxies, retries, authentication, errors.

Transport: HTTPS with verification by default (system trust store, plus podman's
``certs.d/<host>/*.crt``). Loopback registries (127.0.0.0/8, ``localhost``, ``::1``) get
plain HTTP when they serve it (a registry started with ``podman run -p 5000:5000 registry``) and
verified HTTPS when they speak TLS; a certificate that fails verification is an error, never
a reason to fall back. ``insecure=True`` behaves like podman's ``--tls-verify=false``: HTTPS
without certificate verification first, plain HTTP when the registry does not speak TLS.
An explicit ``http://`` or ``https://`` prefix on the registry pins the scheme. Proxies come
from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` as podman reads them (see ``proxies``).

Authentication follows the registry's ``WWW-Authenticate`` challenge (anonymous, Basic, or
Bearer tokens from the realm it names). Reads are retried on 5xx and dropped connections;
every request is retried on 429 after the ``Retry-After`` the registry asks for.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from dagster_uc.errors import ConfigError, OperationError
from dagster_uc.proxies import ProxyRoutingTransport, Transport
from dagster_uc.registry.credentials import Credentials
from dagster_uc.registry.names import is_loopback, parse_registry

if TYPE_CHECKING:
    import ssl

    import httpx

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.2, 0.6)
DEFAULT_PAGE_SIZE = 1000
#: Answers 429 are retried this many times, waiting what Retry-After asks up to the cap.
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_WAIT_CAP_S = 60.0
_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``WWW-Authenticate: Bearer realm="...",service="..."`` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (
            m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3)
        )
        for m in _CHALLENGE_PARAM_RE.finditer(rest)
    }
    return scheme.lower(), params


def is_insufficient_scope(response: httpx.Response) -> bool:
    """A 401 whose challenge says the token lacks the scope (Docker Hub: unknown repository)."""
    if response.status_code != 401:
        return False
    _scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
    return params.get("error") == "insufficient_scope"


def retry_after_s(value: str | None, default: float, now: float | None = None) -> float:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date)."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return default
    return max(0.0, when - (time.time() if now is None else now))


def error_detail(response: httpx.Response) -> str:
    """The registry's own error message (OCI error body), without secrets or huge bodies."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = str(errors[0].get("code") or "")
        message = str(errors[0].get("message") or "")
        text = (
            f"{code} {message}".strip() if code and code.lower() not in message.lower() else message
        )
        return text[:200]
    return ""


def detail_suffix(response: httpx.Response) -> str:
    detail = error_detail(response)
    return f" ({detail})" if detail else ""


def _untrusted_certificate(exc: BaseException) -> bool:
    """The TLS handshake completed far enough to judge the certificate, and it failed."""
    import ssl

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def reason(exc: Exception) -> str:
    """The first line of an exception's text without OpenSSL/errno decorations."""
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0]
    text = re.sub(r"\[SSL: [A-Z0-9_]+\]\s*|\s*\(_ssl\.c:\d+\)|\[Errno -?\d+\]\s*", "", text)
    return text.strip().rstrip(".") or type(exc).__name__


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryConnection:
    """One registry's HTTP connection with authentication; use as a context manager."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        timeout: float = 30,
        page_size: int = DEFAULT_PAGE_SIZE,
        certs_dirs: list[Path] | None = None,
    ) -> None:
        address = parse_registry(registry)
        self.address = address
        #: The host as configured (``docker.io``): what messages and ``podman login`` name.
        self.registry = address.host
        self.insecure = insecure
        self.credentials = credentials
        self.timeout = timeout
        self.page_size = page_size
        self.request_count = 0
        self._certs_dirs = certs_dirs
        if address.scheme is not None:
            self._schemes = [address.scheme]
        elif insecure:
            self._schemes = ["https", "http"]
        elif is_loopback(address.host):
            self._schemes = ["http", "https"]
        else:
            self._schemes = ["https"]
        self._scheme: str | None = self._schemes[0] if len(self._schemes) == 1 else None
        self._client: httpx.Client | None = None
        self._tokens: dict[str, _Token] = {}
        self._basic = False
        self._sleep = time.sleep

    # -- lifecycle

    def __enter__(self) -> RegistryConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.registry!r}, insecure={self.insecure})"

    def use_credentials(self, credentials: Credentials) -> None:
        """Log in with ``credentials`` from now on (e.g. the token ``az acr login`` handed out)."""
        self.credentials = credentials
        self._tokens.clear()
        self._basic = False

    @property
    def base_url(self) -> str:
        return f"{self._scheme or self._schemes[0]}://{self.address.api_host}"

    def _ssl_context(self) -> ssl.SSLContext | bool:
        import ssl

        if self.insecure:
            return False
        context = ssl.create_default_context()
        dirs = self._certs_dirs
        if dirs is None:
            dirs = [
                Path("/etc/containers/certs.d"),
                Path("/etc/docker/certs.d"),
                Path.home() / ".config" / "containers" / "certs.d",
            ]
        for base in dirs:
            folder = base / self.address.api_host
            if folder.is_dir():
                for cert in sorted(folder.glob("*.crt")):
                    try:
                        context.load_verify_locations(cafile=str(cert))
                    except (OSError, ssl.SSLError) as exc:
                        raise ConfigError(
                            f"cannot load CA certificate {cert} for registry {self.registry}: {reason(exc)}."
                        ) from None
        return context

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            verify = self._ssl_context()

            def make(proxy: str | None) -> Transport:
                return httpx.HTTPTransport(verify=verify, proxy=proxy, trust_env=False)

            self._client = httpx.Client(
                timeout=self.timeout,
                transport=cast("httpx.BaseTransport", ProxyRoutingTransport(make)),
                follow_redirects=True,
                trust_env=False,
                headers={"User-Agent": "dagster-uc"},
            )
        return self._client

    # -- low level

    def _auth_header(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        if token is not None and token.expires_at > time.monotonic():
            return {"Authorization": f"Bearer {token.value}"}
        if self._basic and self.credentials is not None:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        retry: bool,
    ) -> httpx.Response:
        """One request with retries: 5xx and transport errors (idempotent methods only), and
        429 for every method (the registry did not process it) after its ``Retry-After``."""
        import httpx

        attempts = len(RETRY_DELAYS) + 1 if retry else 1
        attempt = limited = 0
        while True:
            last = attempt >= attempts - 1
            self.request_count += 1
            log.debug("registry %s %s", method, url.split("?")[0])
            try:
                response = self._http().request(method, url, headers=headers, params=params)
            except httpx.TransportError as exc:
                if last:
                    raise
                log.debug("registry %s %s failed (%s); retrying", method, url, type(exc).__name__)
            else:
                if response.status_code == 429:
                    wait = retry_after_s(response.headers.get("Retry-After"), RETRY_DELAYS[-1])
                    if limited >= RATE_LIMIT_RETRIES or wait > RATE_LIMIT_WAIT_CAP_S:
                        return response
                    limited += 1
                    log.debug("registry %s %s -> 429; waiting %.1f s", method, url, wait)
                    self._sleep(wait)
                    continue
                if response.status_code < 500 or last:
                    return response
                log.debug("registry %s %s -> %s; retrying", method, url, response.status_code)
            self._sleep(RETRY_DELAYS[attempt])
            attempt += 1

    def _resolve_scheme(self) -> None:
        """Pick the scheme of a registry that may speak either: an insecure one HTTPS first
        (like podman), a loopback one plain HTTP first (the usual local registry) and HTTPS
        when it answers like a TLS server; an untrusted certificate is an error unless the
        registry is insecure."""
        if self._scheme is not None:
            return
        import httpx

        error: Exception | None = None
        for scheme in self._schemes:
            try:
                self.request_count += 1
                probe = self._http().get(f"{scheme}://{self.address.api_host}/v2/")
                if scheme == "http" and probe.status_code == 400:
                    # A TLS server's answer to plain HTTP (Go's and nginx's alike); /v2/
                    # answers 200 or 401 otherwise.
                    error = error or OperationError(f"HTTP 400{detail_suffix(probe)}")
                    continue
            except httpx.TransportError as exc:
                if not self.insecure and _untrusted_certificate(exc):
                    raise OperationError(
                        f"registry {self.registry} speaks TLS with a certificate that is not "
                        f"trusted here ({reason(exc)}); add its CA to "
                        f"/etc/containers/certs.d/{self.address.api_host}/ca.crt or set "
                        "container_registry_insecure: true."
                    ) from None
                error = error or exc
                continue
            self._scheme = scheme
            return
        raise OperationError(
            f"cannot reach registry {self.registry}: {reason(error or Exception('no answer'))}."
        )

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str,
        repository: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """A request with the registry's authentication challenge handled; raises on
        401/403/429/5xx unless the status is in ``allow``."""
        import httpx

        self._resolve_scheme()
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        retry = method in ("GET", "HEAD")
        response: httpx.Response | None = None
        challenged = False
        for _ in range(3):
            all_headers = dict(headers or {})
            all_headers.update(self._auth_header(scope))
            try:
                response = self._send(method, url, headers=all_headers, params=params, retry=retry)
            except httpx.TransportError as exc:
                if self.base_url.startswith("https") and "SSL" in str(exc):
                    raise OperationError(
                        f"cannot reach registry {self.registry} over HTTPS: {reason(exc)}; "
                        "if it serves plain HTTP or an untrusted certificate, mark it insecure."
                    ) from None
                raise OperationError(
                    f"cannot reach registry {self.registry}: {reason(exc)}."
                ) from None
            if response.status_code != 401 or challenged:
                break
            challenged = True
            if not self._answer_challenge(response, scope, repository):
                break
        assert response is not None
        if response.status_code not in allow:
            self._raise_for_access(response, method, url, repository)
        return response

    def _answer_challenge(
        self, response: httpx.Response, scope: str, repository: str | None
    ) -> bool:
        """Prepare credentials for one retry after a 401; False when retrying cannot help."""
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "bearer" and params.get("realm"):
            self._tokens.pop(scope, None)
            self._fetch_token(params, scope, repository)
            return True
        if scheme == "basic":
            if self.credentials is None or self._basic:
                return False
            self._basic = True
            return True
        return False

    def _fetch_token(self, challenge: dict[str, str], scope: str, repository: str | None) -> None:
        """Bearer token from the realm (GET with Basic, or OAuth2 POST with a refresh token)."""
        import httpx

        realm = challenge["realm"]
        wanted = challenge.get("scope") or scope
        form: dict[str, str] = {}
        if challenge.get("service"):
            form["service"] = challenge["service"]
        if wanted:
            form["scope"] = wanted
        creds = self.credentials
        try:
            if creds is not None and creds.identity_token:
                self.request_count += 1
                answer = self._http().post(
                    realm,
                    data={
                        **form,
                        "grant_type": "refresh_token",
                        "refresh_token": creds.identity_token,
                        "client_id": "dagster-uc",
                    },
                )
            else:
                auth = (creds.username, creds.password) if creds is not None else None
                self.request_count += 1
                answer = self._http().get(realm, params=form, auth=auth)
        except httpx.TransportError as exc:
            raise OperationError(
                f"cannot reach the token service of registry {self.registry} at {realm}: {reason(exc)}."
            ) from None
        if answer.status_code in (401, 403):
            raise OperationError(self.refused_message(answer.status_code, repository))
        if answer.status_code >= 400:
            raise OperationError(
                f"the token service of registry {self.registry} answered HTTP {answer.status_code}"
                f"{detail_suffix(answer)}; try again later."
            )
        try:
            body = answer.json()
        except (ValueError, UnicodeDecodeError):
            body = {}
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise OperationError(
                f"the token service of registry {self.registry} answered without a token."
            )
        try:
            expires_in = max(int(body.get("expires_in") or 60), 10)
        except (TypeError, ValueError):
            expires_in = 60
        self._tokens[scope] = _Token(str(token), time.monotonic() + expires_in - 5)

    def refused_message(self, status: int, repository: str | None) -> str:
        what = f"repository {repository}" if repository else "the request"
        if self.credentials is None:
            return (
                f"registry {self.registry} refused access to {what} (HTTP {status}): "
                f"log in with `podman login {self.registry}`."
            )
        source = f" from {self.credentials.source}" if self.credentials.source else ""
        return (
            f"registry {self.registry} refused access to {what} with the credentials{source} "
            f"(HTTP {status}): log in again with `podman login {self.registry}`."
        )

    def _raise_for_access(
        self, response: httpx.Response, method: str, url: str, repository: str | None
    ) -> None:
        status = response.status_code
        if status in (401, 403):
            raise OperationError(self.refused_message(status, repository))
        if status == 429:
            wait = retry_after_s(response.headers.get("Retry-After"), 0)
            later = f"try again in {wait:.0f} s" if wait >= 1 else "try again later"
            raise OperationError(
                f"registry {self.registry} is limiting requests (HTTP 429){detail_suffix(response)}; "
                f"{later}."
            )
        if status >= 500:
            path = urllib.parse.urlsplit(url).path
            raise OperationError(
                f"registry {self.registry} answered HTTP {status} to {method} {path}"
                f"{detail_suffix(response)}; try again later."
            )
