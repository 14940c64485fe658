"""The distribution API calls dagster-uc needs: tags (every page), a tag's manifest digest,
manifest deletion, and the catalog of repositories."""

from __future__ import annotations

import contextlib
import hashlib
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from dagster_uc.errors import OperationError, UsageError
from dagster_uc.registry.connection import (
    RegistryConnection,
    detail_suffix,
    is_insufficient_scope,
)
from dagster_uc.registry.credentials import load_credentials

if TYPE_CHECKING:
    import httpx

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_MAX_PAGES = 1_000_000
_REPO_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
#: Answers meaning "this registry does not offer the catalog to this login" (Harbor, GHCR,
#: Docker Hub, ACR without the catalog permission).
CATALOG_UNAVAILABLE = (401, 403, 404, 405)


class RegistryNotFoundError(OperationError):
    """A tag, manifest or repository does not exist in the registry."""


class CatalogUnavailableError(OperationError):
    """The registry does not list its repositories (``/v2/_catalog``) to this login."""


class DeleteNotAllowedError(OperationError):
    """The registry refuses to delete manifests (disabled, unsupported, or not permitted)."""


class RegistryClient(RegistryConnection):
    """Synchronous client for one registry; use as a context manager or call :meth:`close`."""

    def __enter__(self) -> RegistryClient:
        return self

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

    def _unknown_repository(self, response: httpx.Response) -> bool:
        """404, or Docker Hub's 401 ``insufficient_scope`` to a login for a repository that was
        never pushed (it cannot tell "no such repository" from "not yours" before the push)."""
        return response.status_code == 404 or (
            self.credentials is not None and is_insufficient_scope(response)
        )

    # -- API

    def ping(self) -> None:
        """Checks that the registry answers the distribution API (authenticating if asked)."""
        self._request("GET", "/v2/", scope="")

    def _paginate(
        self,
        path: str,
        key: str,
        *,
        scope: str,
        repository: str | None,
        allow: tuple[int, ...] = (),
    ) -> Iterator[list[str]]:
        url: str | None = path
        params: dict[str, str] | None = {"n": str(self.page_size)} if self.page_size > 0 else None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            response = self._request(
                "GET",
                url,
                scope=scope,
                repository=repository,
                params=params,
                allow=(401,) if repository is not None else allow,
            )
            if repository is not None and url == path and self._unknown_repository(response):
                return
            if response.status_code in allow:
                raise CatalogUnavailableError(
                    f"registry {self.registry} does not list its repositories to this login "
                    f"(HTTP {response.status_code} to {urllib.parse.urlsplit(url).path})."
                )
            if response.status_code == 401:
                raise OperationError(self.refused_message(401, repository))
            if response.status_code == 404:
                raise RegistryNotFoundError(
                    f"registry {self.registry} answered HTTP 404 to {urllib.parse.urlsplit(url).path}"
                    f"{detail_suffix(response)}."
                )
            if response.status_code >= 400:
                raise OperationError(
                    f"registry {self.registry} answered HTTP {response.status_code} to "
                    f"{urllib.parse.urlsplit(url).path}{detail_suffix(response)}."
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

    def push_allowed(self, repository: str) -> bool:
        """Whether this login may push to ``repository``: starts a blob upload and cancels it
        at once (nothing is stored; the only way to ask a registry without pushing)."""
        self._check_repository(repository)
        response = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scope=f"repository:{repository}:pull,push",
            repository=repository,
            allow=(401, 403, 404),
        )
        location = response.headers.get("Location")
        if response.status_code == 202 and location:
            with contextlib.suppress(OperationError):
                self._request(
                    "DELETE",
                    location,
                    scope=f"repository:{repository}:pull,push",
                    repository=repository,
                    allow=(400, 401, 403, 404, 405),
                )
        return response.status_code == 202

    def catalog(self, prefix: str | None = None) -> list[str]:
        """Repositories in the registry (all pages), only those at or under ``prefix`` if given.

        Raises :class:`CatalogUnavailableError` when the registry does not offer the catalog.
        """
        prefix = (prefix or "").strip("/")
        repos: list[str] = []
        for page in self._paginate(
            "/v2/_catalog",
            "repositories",
            scope="registry:catalog:*",
            repository=None,
            allow=CATALOG_UNAVAILABLE,
        ):
            repos.extend(r for r in page if not prefix or r == prefix or r.startswith(prefix + "/"))
        return repos

    def _manifest_head(self, repository: str, reference: str) -> httpx.Response:
        self._check_repository(repository)
        self._check_reference(reference)
        path = f"/v2/{repository}/manifests/{reference}"
        scope = f"repository:{repository}:pull"
        headers = {"Accept": MANIFEST_ACCEPT}
        allow = (401,) if self.credentials is not None else ()
        response = self._request(
            "HEAD", path, scope=scope, repository=repository, headers=headers, allow=allow
        )
        if response.status_code == 405:
            response = self._request(
                "GET", path, scope=scope, repository=repository, headers=headers, allow=allow
            )
        if response.status_code == 401 and not self._unknown_repository(response):
            raise OperationError(self.refused_message(401, repository))
        return response

    def tag_exists(self, repository: str, tag: str) -> bool:
        """True when ``repository:tag`` exists."""
        response = self._manifest_head(repository, tag)
        if self._unknown_repository(response):
            return False
        if response.status_code >= 400:
            raise OperationError(
                f"registry {self.registry} answered HTTP {response.status_code} when checking "
                f"{repository}:{tag}{detail_suffix(response)}."
            )
        return True

    def manifest_digest(self, repository: str, tag: str) -> str:
        """The digest (``sha256:...``) of the manifest ``repository:tag`` points to."""
        response = self._manifest_head(repository, tag)
        if self._unknown_repository(response):
            raise RegistryNotFoundError(
                f"tag {tag} does not exist in repository {repository} on registry {self.registry}."
            )
        if response.status_code >= 400:
            raise OperationError(
                f"registry {self.registry} answered HTTP {response.status_code} when reading "
                f"{repository}:{tag}{detail_suffix(response)}."
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

    def _delete_refused(self, status: int, repository: str) -> str:
        if status in (400, 405):
            return (
                f"registry {self.registry} does not allow deleting images (HTTP {status}): "
                "enable deletes on the registry (storage.delete.enabled for the "
                "CNCF registry) or delete old images in the registry's own interface."
            )
        role = (
            "the AcrDelete role (or Contributor)"
            if self.address.host.lower().endswith(".azurecr.io")
            else "delete permission on the repository (on Azure Container Registry the AcrDelete role)"
        )
        who = "this login" if self.credentials is not None else "anonymous access"
        return (
            f"registry {self.registry} does not let {who} delete images in {repository} "
            f"(HTTP {status}): the identity needs {role}."
        )

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Deletes the manifest ``digest`` (and with it every tag on it); False if already gone.

        Raises :class:`DeleteNotAllowedError` when the registry refuses deletes.
        """
        self._check_repository(repository)
        if not _DIGEST_RE.match(digest):
            raise UsageError(f"{digest!r} is not a manifest digest (sha256:...).")
        response = self._request(
            "DELETE",
            f"/v2/{repository}/manifests/{digest}",
            scope=f"repository:{repository}:delete",
            repository=repository,
            allow=(401, 403),
        )
        status = response.status_code
        if status in (200, 202, 204):
            return True
        if status == 404:
            return False
        if status in (400, 401, 403, 405):
            raise DeleteNotAllowedError(self._delete_refused(status, repository))
        raise OperationError(
            f"registry {self.registry} answered HTTP {status} when deleting "
            f"{repository}@{digest}{detail_suffix(response)}."
        )


def connect(
    registry: str,
    *,
    insecure: bool = False,
    repository: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> RegistryClient:
    """A client for ``registry`` (``host[:port][/path]``) with credentials from the
    podman/docker auth files."""
    creds = load_credentials(registry, env, repository=repository)
    return RegistryClient(registry, insecure=insecure, credentials=creds, timeout=timeout)
