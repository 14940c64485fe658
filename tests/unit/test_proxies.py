"""Proxy choice as Go's ProxyFromEnvironment makes it (kubectl, Helm, podman)."""

from __future__ import annotations

import pytest

from dagster_uc.proxies import ProxyRoutingTransport, describe_proxy, proxy_for

ENV = {"HTTPS_PROXY": "http://proxy.corp:3128", "HTTP_PROXY": "proxy.corp:8080"}


@pytest.mark.parametrize(
    ("url", "no_proxy", "expected"),
    [
        ("https://api.aks.io:443/api", "", "http://proxy.corp:3128"),
        ("http://registry.lan:5000/v2/", "", "http://proxy.corp:8080"),
        ("https://127.0.0.1:6443/", "", None),
        ("https://[::1]:6443/", "", None),
        ("https://localhost:6443/", "", None),
        ("https://api.aks.io/", "*", None),
        ("https://api.aks.io/", "aks.io", None),
        ("https://aks.io/", "aks.io", None),
        ("https://aks.io/", ".aks.io", "http://proxy.corp:3128"),
        ("https://x.aks.io/", ".aks.io", None),
        ("https://x.aks.io/", "*.aks.io", None),
        ("https://notaks.io/", "aks.io", "http://proxy.corp:3128"),
        ("https://API.AKS.IO/", "api.aks.io", None),
        ("https://10.1.2.3:6443/", "10.0.0.0/8", None),
        ("https://10.1.2.3:6443/", "10.1.2.3", None),
        ("https://11.1.2.3:6443/", "10.0.0.0/8", "http://proxy.corp:3128"),
        ("https://api.aks.io:6443/", "api.aks.io:6443", None),
        ("https://api.aks.io:443/", "api.aks.io:6443", "http://proxy.corp:3128"),
        ("https://api.aks.io/", "api.aks.io:443", None),
        ("https://api.aks.io/", " other.io , api.aks.io ", None),
    ],
)
def test_proxy_for(url: str, no_proxy: str, expected: str | None) -> None:
    assert proxy_for(url, {**ENV, "NO_PROXY": no_proxy}) == expected


def test_upper_case_wins_and_lower_case_is_read() -> None:
    env = {"https_proxy": "http://lower:1", "no_proxy": "skip.io"}
    assert proxy_for("https://a.io/", env) == "http://lower:1"
    assert proxy_for("https://skip.io/", env) is None
    assert proxy_for("https://a.io/", {**env, "HTTPS_PROXY": "http://upper:2"}) == "http://upper:2"
    assert proxy_for("https://a.io/", {}) is None
    assert proxy_for("http://a.io/", {"HTTPS_PROXY": "http://p:1"}) is None


def test_proxy_described_without_its_password() -> None:
    assert describe_proxy("http://user:secret@proxy.corp:3128") == "http://proxy.corp:3128"


class Recorder:
    def __init__(self, name: str | None) -> None:
        self.name = name
        self.closed = False

    def handle_request(self, request: object) -> str | None:
        return self.name

    def close(self) -> None:
        self.closed = True


class Req:
    def __init__(self, url: str) -> None:
        self.url = url


def test_routing_transport_makes_one_transport_per_proxy() -> None:
    made: list[Recorder] = []

    def make(proxy: str | None) -> Recorder:
        made.append(Recorder(proxy))
        return made[-1]

    router = ProxyRoutingTransport(make, lambda url: None if "direct" in url else "http://p:1")
    assert router.handle_request(Req("https://direct.io/")) is None
    assert router.handle_request(Req("https://a.io/")) == "http://p:1"
    assert router.handle_request(Req("https://b.io/")) == "http://p:1"
    assert [m.name for m in made] == [None, "http://p:1"]
    router.close()
    assert all(m.closed for m in made)
