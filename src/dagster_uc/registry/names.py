"""What a configured registry names: scheme, the host to connect to, and a repository path.

``container_registry`` may carry a path (``ghcr.io/myorg``, ``myacr.azurecr.io/team``): the
client connects to the host and the path is the start of every repository name. Docker Hub is
configured as ``docker.io`` but its API lives at ``registry-1.docker.io``, and docker stores
its login under ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from dagster_uc.errors import UsageError

DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", DOCKER_HUB_API)
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


@dataclass(frozen=True)
class RegistryAddress:
    scheme: str | None
    host: str
    path: str = ""

    @property
    def is_docker_hub(self) -> bool:
        return self.host.lower() in DOCKER_HUB_NAMES

    @property
    def api_host(self) -> str:
        """The host the distribution API is spoken to."""
        return DOCKER_HUB_API if self.is_docker_hub else self.host

    @property
    def credential_hosts(self) -> tuple[str, ...]:
        """Auth file keys (normalized) that hold this registry's login."""
        return DOCKER_HUB_NAMES if self.is_docker_hub else (self.host,)


def parse_registry(registry: str) -> RegistryAddress:
    """``[scheme://]host[:port][/path]`` as configured -> its parts."""
    value = registry.strip()
    scheme: str | None = None
    for prefix in ("https://", "http://"):
        if value.startswith(prefix):
            scheme = prefix[:-3]
            value = value[len(prefix) :]
    host, _, path = value.rstrip("/").partition("/")
    path = path.strip("/")
    if (
        not host
        or any(c.isspace() for c in value)
        or (path and not all(_COMPONENT_RE.match(part) for part in path.split("/")))
    ):
        raise UsageError(
            f"registry {registry!r} is not a host name with an optional port and path "
            "(host[:port][/path], the path in lowercase)."
        )
    return RegistryAddress(scheme, host, path)


def hostname(host: str) -> str:
    """``host:port`` / ``[v6]:port`` -> the bare host name or address."""
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host[1:]
    if host.count(":") > 1:
        return host
    return host.partition(":")[0]


def is_loopback(registry: str) -> bool:
    """True for registries on this machine (127.0.0.0/8, ``localhost``, ``::1``)."""
    name = hostname(parse_registry(registry).host).lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
