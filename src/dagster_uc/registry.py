"""Thin adapter over the OCI distribution HTTP API (tags, manifests, catalog).

Only what dagster-uc needs: list tags (every page), check a tag, read a manifest digest,
delete a manifest, list repositories. Authentication follows the registry's
``WWW-Authenticate`` challenge (anonymous, Basic, or Bearer tokens from the realm it names),
with credentials read from the same files podman and docker use.

Transport: HTTPS with verification by default (system trust store, plus podman's
``certs.d/<host>/*.crt``). Loopback registries (127.0.0.0/8, ``localhost``, ``::1``) are spoken
to over plain HTTP. ``insecure=True`` behaves like podman's ``--tls-verify=false``: HTTPS
without certificate verification first, plain HTTP when the registry does not speak TLS.
An explicit ``http://`` or ``https://`` prefix on the registry pins the scheme.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster_uc.errors import ConfigError, OperationError, UsageError

if TYPE_CHECKING:
    import ssl

    import httpx

log = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DEFAULT_PAGE_SIZE = 1000
RETRY_DELAYS = (0.2, 0.6)
_MAX_PAGES = 1_000_000
_REPO_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


class RegistryNotFoundError(OperationError):
    """A tag, manifest or repository does not exist in the registry."""


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """Login for one registry. The password never appears in repr or logs."""

    username: str
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str | None = None


def auth_file_candidates(
    env: Mapping[str, str] | None = None, home: Path | None = None
) -> list[Path]:
    """The credential files podman and docker read, in the order dagster-uc searches them."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    paths: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    elif hasattr(os, "getuid"):
        paths.append(Path(f"/run/containers/{os.getuid()}/auth.json"))
    paths.append(home / ".config" / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    paths.append(docker_dir / "config.json")
    return paths


def _normalize_auth_key(key: str) -> str:
    key = key.strip()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    key = key.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key


def _entry_credentials(entry: Any, path: Path, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    identity = entry.get("identitytoken") or None
    username = entry.get("username")
    password = entry.get("password")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(
                f'credentials file {path} has an invalid "auth" value for {key}: '
                f"log in again with `podman login {key}`."
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(
                f'credentials file {path} has an "auth" value for {key} without a colon: '
                f"log in again with `podman login {key}`."
            )
    if identity and not username:
        username = "<token>"
    if not username and not identity:
        return None
    return Credentials(
        username=str(username),
        password=str(password or ""),
        identity_token=str(identity) if identity else None,
        source=str(path),
    )


def load_credentials(
    registry: str,
    env: Mapping[str, str] | None = None,
    *,
    repository: str | None = None,
    home: Path | None = None,
) -> Credentials | None:
    """Credentials for ``registry`` (host[:port]) from the first file that has an entry for it.

    Files are searched in the order of :func:`auth_file_candidates`. Keys may carry an
    ``https://`` prefix or a ``/v1/`` suffix (docker); a key scoped to a repository namespace
    (``host/team``) wins over the bare host within the same file when it matches
    ``repository``. An ``identitytoken`` (Azure Container Registry) is used as an OAuth2
    refresh token.
    """
    host = _split_registry(registry)[1]
    for path in auth_file_candidates(env, home):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}.") from None
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"credentials file {path} is not valid JSON (line {exc.lineno}): fix or remove it."
            ) from None
        auths = data.get("auths") if isinstance(data, dict) else None
        if not isinstance(auths, dict):
            continue
        best: tuple[int, str, Any] | None = None
        for key, entry in auths.items():
            norm = _normalize_auth_key(str(key))
            if norm == host:
                score = 0
            elif repository and norm.startswith(host + "/"):
                namespace = norm[len(host) + 1 :]
                if repository != namespace and not repository.startswith(namespace + "/"):
                    continue
                score = len(namespace)
            else:
                continue
            if best is None or score > best[0]:
                best = (score, str(key), entry)
        if best is not None:
            creds = _entry_credentials(best[2], path, host)
            if creds is not None:
                return creds
    return None


# --------------------------------------------------------------------------- helpers


def _split_registry(registry: str) -> tuple[str | None, str]:
    """``(scheme or None, host[:port])`` from what the user configured."""
    value = registry.strip()
    scheme: str | None = None
    for prefix in ("https://", "http://"):
        if value.startswith(prefix):
            scheme = prefix[:-3]
            value = value[len(prefix) :]
    value = value.rstrip("/")
    if not value or "/" in value or any(c.isspace() for c in value):
        raise UsageError(
            f"registry {registry!r} is not a host name with an optional port (host[:port])."
        )
    return scheme, value


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host[1:]
    if host.count(":") > 1:
        return host
    return host.partition(":")[0]


def is_loopback(registry: str) -> bool:
    """True for registries on this machine (127.0.0.0/8, ``localhost``, ``::1``)."""
    name = _hostname(_split_registry(registry)[1]).lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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


def _error_detail(response: httpx.Response) -> str:
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


def _reason(exc: Exception) -> str:
    """The first line of an exception's text without OpenSSL/errno decorations."""
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0]
    text = re.sub(r"\[SSL: [A-Z0-9_]+\]\s*|\s*\(_ssl\.c:\d+\)|\[Errno -?\d+\]\s*", "", text)
    return text.strip().rstrip(".") or type(exc).__name__


@dataclass
class _Token:
    value: str
    expires_at: float


# --------------------------------------------------------------------------- client


class RegistryClient:
    """Synchronous client for one registry; use as a context manager or call :meth:`close`."""

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
        scheme, host = _split_registry(registry)
        self.registry = host
        self.insecure = insecure
        self.credentials = credentials
        self.timeout = timeout
        self.page_size = page_size
        self.request_count = 0
        self._certs_dirs = certs_dirs
        if scheme is not None:
            self._schemes = [scheme]
        elif insecure:
            self._schemes = ["https", "http"]
        elif is_loopback(host):
            self._schemes = ["http"]
        else:
            self._schemes = ["https"]
        self._scheme: str | None = self._schemes[0] if len(self._schemes) == 1 else None
        self._client: httpx.Client | None = None
        self._tokens: dict[str, _Token] = {}
        self._basic = False
        self._sleep = time.sleep

    # -- lifecycle

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r}, insecure={self.insecure})"

    @property
    def base_url(self) -> str:
        return f"{self._scheme or self._schemes[0]}://{self.registry}"

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
            folder = base / self.registry
            if folder.is_dir():
                for cert in sorted(folder.glob("*.crt")):
                    try:
                        context.load_verify_locations(cafile=str(cert))
                    except (OSError, ssl.SSLError) as exc:
                        raise ConfigError(
                            f"cannot load CA certificate {cert} for registry {self.registry}: {_reason(exc)}."
                        ) from None
        return context

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                timeout=self.timeout,
                verify=self._ssl_context(),
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
        """One request with retries on 5xx and transport errors (idempotent methods only)."""
        import httpx

        attempts = len(RETRY_DELAYS) + 1 if retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            self.request_count += 1
            log.debug("registry %s %s", method, url.split("?")[0])
            try:
                response = self._http().request(method, url, headers=headers, params=params)
            except httpx.TransportError as exc:
                if last:
                    raise
                log.debug("registry %s %s failed (%s); retrying", method, url, type(exc).__name__)
            else:
                if response.status_code < 500 or last:
                    return response
                log.debug("registry %s %s -> %s; retrying", method, url, response.status_code)
            self._sleep(RETRY_DELAYS[attempt])
        raise AssertionError("unreachable")

    def _resolve_scheme(self) -> None:
        """For insecure registries: HTTPS without verification, else plain HTTP (like podman)."""
        if self._scheme is not None:
            return
        import httpx

        error: Exception | None = None
        for scheme in self._schemes:
            try:
                self.request_count += 1
                self._http().get(f"{scheme}://{self.registry}/v2/")
            except httpx.TransportError as exc:
                error = error or exc
                continue
            self._scheme = scheme
            return
        raise OperationError(
            f"cannot reach registry {self.registry}: {_reason(error or Exception('no answer'))}."
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
    ) -> httpx.Response:
        """A request with the registry's authentication challenge handled; raises on 401/403/5xx."""
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
                        f"cannot reach registry {self.registry} over HTTPS: {_reason(exc)}; "
                        "if it serves plain HTTP or an untrusted certificate, mark it insecure."
                    ) from None
                raise OperationError(
                    f"cannot reach registry {self.registry}: {_reason(exc)}."
                ) from None
            if response.status_code != 401 or challenged:
                break
            challenged = True
            if not self._answer_challenge(response, scope, repository):
                break
        assert response is not None
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
                f"cannot reach the token service of registry {self.registry} at {realm}: {_reason(exc)}."
            ) from None
        if answer.status_code in (401, 403):
            raise OperationError(self._refused_message(answer.status_code, repository))
        if answer.status_code >= 400:
            raise OperationError(
                f"the token service of registry {self.registry} answered HTTP {answer.status_code}"
                f"{self._detail_suffix(answer)}; try again later."
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

    def _refused_message(self, status: int, repository: str | None) -> str:
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

    @staticmethod
    def _detail_suffix(response: httpx.Response) -> str:
        detail = _error_detail(response)
        return f" ({detail})" if detail else ""

    def _raise_for_access(
        self, response: httpx.Response, method: str, url: str, repository: str | None
    ) -> None:
        status = response.status_code
        if status in (401, 403):
            raise OperationError(self._refused_message(status, repository))
        if status >= 500:
            path = urllib.parse.urlsplit(url).path
            raise OperationError(
                f"registry {self.registry} answered HTTP {status} to {method} {path}"
                f"{self._detail_suffix(response)}; try again later."
            )

    # -- validation

    @staticmethod
    def _check_repository(repository: str) -> None:
        if not _REPO_RE.match(repository) or len(repository) > 255:
            raise UsageError(
                f"{repository!r} is not a valid image repository name (lowercase letters, digits, "
                "separators . _ - and / between components)."
            )

    @staticmethod
    def _check_reference(reference: str) -> None:
        if not (_TAG_RE.match(reference) or _DIGEST_RE.match(reference)):
            raise UsageError(f"{reference!r} is not a valid image tag or digest.")

    # -- API

    def ping(self) -> None:
        """Checks that the registry answers the distribution API (authenticating if asked)."""
        self._request("GET", "/v2/", scope="")

    def _paginate(
        self, path: str, key: str, *, scope: str, repository: str | None
    ) -> Iterator[list[str]]:
        url: str | None = path
        params: dict[str, str] | None = {"n": str(self.page_size)} if self.page_size > 0 else None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            response = self._request("GET", url, scope=scope, repository=repository, params=params)
            if response.status_code == 404:
                if repository is not None and url == path:
                    return
                raise RegistryNotFoundError(
                    f"registry {self.registry} answered HTTP 404 to {urllib.parse.urlsplit(url).path}"
                    f"{self._detail_suffix(response)}."
                )
            if response.status_code >= 400:
                raise OperationError(
                    f"registry {self.registry} answered HTTP {response.status_code} to "
                    f"{urllib.parse.urlsplit(url).path}{self._detail_suffix(response)}."
                )
            try:
                body = response.json()
            except (ValueError, UnicodeDecodeError):
                raise OperationError(
                    f"registry {self.registry} answered {urllib.parse.urlsplit(url).path} with a body that is not JSON."
                ) from None
            items = body.get(key) if isinstance(body, dict) else None
            yield [str(item) for item in items or []]
            next_url = self._next_link(response)
            if next_url is None or next_url in seen:
                return
            seen.add(next_url)
            url, params = next_url, None
        raise OperationError(f"registry {self.registry} returned too many pages for {path}.")

    def _next_link(self, response: httpx.Response) -> str | None:
        for header in response.headers.get_list("Link"):
            match = _LINK_NEXT_RE.search(header)
            if match:
                return urllib.parse.urljoin(str(response.url), match.group(1))
        return None

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository`` (all pages); [] when the repository does not exist."""
        self._check_repository(repository)
        tags: list[str] = []
        seen: set[str] = set()
        for page in self._paginate(
            f"/v2/{repository}/tags/list",
            "tags",
            scope=f"repository:{repository}:pull",
            repository=repository,
        ):
            for tag in page:
                if tag not in seen:
                    seen.add(tag)
                    tags.append(tag)
        return tags

    def catalog(self, prefix: str | None = None) -> list[str]:
        """Repositories in the registry (all pages), only those at or under ``prefix`` if given."""
        prefix = (prefix or "").strip("/")
        repos: list[str] = []
        for page in self._paginate(
            "/v2/_catalog", "repositories", scope="registry:catalog:*", repository=None
        ):
            repos.extend(r for r in page if not prefix or r == prefix or r.startswith(prefix + "/"))
        return repos

    def _manifest_head(self, repository: str, reference: str) -> httpx.Response:
        self._check_repository(repository)
        self._check_reference(reference)
        path = f"/v2/{repository}/manifests/{reference}"
        scope = f"repository:{repository}:pull"
        headers = {"Accept": MANIFEST_ACCEPT}
        response = self._request("HEAD", path, scope=scope, repository=repository, headers=headers)
        if response.status_code == 405:
            response = self._request(
                "GET", path, scope=scope, repository=repository, headers=headers
            )
        return response

    def tag_exists(self, repository: str, tag: str) -> bool:
        """True when ``repository:tag`` exists."""
        response = self._manifest_head(repository, tag)
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise OperationError(
                f"registry {self.registry} answered HTTP {response.status_code} when checking "
                f"{repository}:{tag}{self._detail_suffix(response)}."
            )
        return True

    def manifest_digest(self, repository: str, tag: str) -> str:
        """The digest (``sha256:...``) of the manifest ``repository:tag`` points to."""
        response = self._manifest_head(repository, tag)
        if response.status_code == 404:
            raise RegistryNotFoundError(
                f"tag {tag} does not exist in repository {repository} on registry {self.registry}."
            )
        if response.status_code >= 400:
            raise OperationError(
                f"registry {self.registry} answered HTTP {response.status_code} when reading "
                f"{repository}:{tag}{self._detail_suffix(response)}."
            )
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{tag}",
            scope=f"repository:{repository}:pull",
            repository=repository,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        digest = response.headers.get("Docker-Content-Digest")
        return digest or "sha256:" + hashlib.sha256(response.content).hexdigest()

    def tag_digests(self, repository: str, tags: Iterable[str] | None = None) -> dict[str, str]:
        """``{tag: manifest digest}`` for ``tags`` (default: every tag); vanished tags are left out."""
        result: dict[str, str] = {}
        for tag in self.list_tags(repository) if tags is None else tags:
            try:
                result[tag] = self.manifest_digest(repository, tag)
            except RegistryNotFoundError:
                continue
        return result

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Deletes the manifest ``digest`` (and with it every tag on it); False if already gone."""
        self._check_repository(repository)
        if not _DIGEST_RE.match(digest):
            raise UsageError(f"{digest!r} is not a manifest digest (sha256:...).")
        response = self._request(
            "DELETE",
            f"/v2/{repository}/manifests/{digest}",
            scope=f"repository:{repository}:delete",
            repository=repository,
        )
        if response.status_code in (200, 202, 204):
            return True
        if response.status_code == 404:
            return False
        if response.status_code == 405:
            raise OperationError(
                f"registry {self.registry} does not allow deleting images (HTTP 405): enable "
                "deletes on the registry (storage.delete.enabled for the CNCF registry)."
            )
        raise OperationError(
            f"registry {self.registry} answered HTTP {response.status_code} when deleting "
            f"{repository}@{digest}{self._detail_suffix(response)}."
        )


def connect(
    registry: str,
    *,
    insecure: bool = False,
    repository: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> RegistryClient:
    """A client for ``registry`` with credentials from the podman/docker auth files."""
    creds = load_credentials(registry, env, repository=repository)
    return RegistryClient(registry, insecure=insecure, credentials=creds, timeout=timeout)
