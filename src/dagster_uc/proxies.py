"""HTTP proxies the way kubectl, Helm and podman choose them (Go's ``ProxyFromEnvironment``).

``HTTPS_PROXY`` serves ``https://`` URLs and ``HTTP_PROXY`` ``http://`` URLs (upper case
first, then lower case); ``NO_PROXY`` lists hosts reached directly: ``*`` for all, host names
(``example.com`` also covers its subdomains, ``.example.com`` only them), IP addresses, CIDR
ranges, each optionally with ``:port``. ``localhost`` and loopback addresses are never proxied.
A kubeconfig cluster's ``proxy-url`` replaces all of this for that cluster, as in client-go.

:class:`ProxyRoutingTransport` picks the proxy per request, so one client can reach an API
server through the proxy and a token service directly (or the other way round). It works with
any httpx-like transport (httpx for the registry, httpx2 for lightkube).
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Protocol


class Transport(Protocol):
    def handle_request(self, request: Any) -> Any: ...

    def close(self) -> None: ...


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name.upper()) or environ.get(name.lower()) or ""


def _split_host_port(netloc: str) -> tuple[str, str]:
    """``host:port`` / ``[v6]:port`` -> (host lowercased without brackets, port or "")."""
    netloc = netloc.rpartition("@")[2].lower()
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        return host, rest.lstrip(":")
    if netloc.count(":") == 1:
        host, _, port = netloc.partition(":")
        return host, port
    return netloc, ""


def _default_port(scheme: str) -> str:
    return "443" if scheme == "https" else "80"


def _no_proxy_matches(entry: str, host: str, port: str) -> bool:
    entry = entry.strip().lower()
    if not entry:
        return False
    if entry == "*":
        return True
    if "/" in entry:
        try:
            return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    entry_host, entry_port = _split_host_port(entry)
    if entry_port and entry_port != port:
        return False
    try:
        return ipaddress.ip_address(entry_host) == ipaddress.ip_address(host)
    except ValueError:
        pass
    if entry_host.startswith("*."):
        entry_host = entry_host[1:]
    if entry_host.startswith("."):
        return host.endswith(entry_host)
    return host == entry_host or host.endswith("." + entry_host)


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL for ``url`` from the environment, or None to connect directly."""
    environ = os.environ if environ is None else environ
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    proxy = _env(environ, "https_proxy") if scheme == "https" else _env(environ, "http_proxy")
    if not proxy or scheme not in ("http", "https"):
        return None
    host, port = _split_host_port(parts.netloc)
    if _is_local(host):
        return None
    port = port or _default_port(scheme)
    if any(_no_proxy_matches(e, host, port) for e in _env(environ, "no_proxy").split(",")):
        return None
    return normalize_proxy_url(proxy)


def normalize_proxy_url(proxy: str) -> str:
    """``proxy.corp:3128`` -> ``http://proxy.corp:3128`` (a bare host:port means HTTP, as in Go)."""
    proxy = proxy.strip()
    return proxy if "://" in proxy else "http://" + proxy


def describe_proxy(proxy: str) -> str:
    """The proxy URL without a password, for messages."""
    parts = urllib.parse.urlsplit(proxy)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


class ProxyRoutingTransport:
    """Sends each request through the transport made for its proxy (None: direct).

    ``choose(url)`` names the proxy; ``make(proxy)`` builds a transport for it, once.
    """

    def __init__(
        self,
        make: Callable[[str | None], Transport],
        choose: Callable[[str], str | None] = proxy_for,
    ) -> None:
        self._make = make
        self._choose = choose
        self._transports: dict[str | None, Transport] = {}

    def transport_for(self, url: str) -> Transport:
        proxy = self._choose(url)
        transport = self._transports.get(proxy)
        if transport is None:
            transport = self._transports[proxy] = self._make(proxy)
        return transport

    def handle_request(self, request: Any) -> Any:
        return self.transport_for(str(request.url)).handle_request(request)

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def __enter__(self) -> ProxyRoutingTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
