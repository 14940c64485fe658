"""Registries that limit what a client may do: rate limits (429), no deletes, no catalog.

A proxy in front of the real registry answers as Harbor, GHCR, Docker Hub and ACR do."""

from __future__ import annotations

import pytest

from dagster_uc.errors import OperationError
from dagster_uc.registry import CatalogUnavailableError, DeleteNotAllowedError, RegistryClient
from dagster_uc.registry.connection import retry_after_s
from stack.registry import Fault, LocalRegistry, PaginatingProxy, push_many_tags


def test_429_is_retried_after_the_retry_after_it_asks_for(
    paging_proxy: PaginatingProxy, repo: str
) -> None:
    push_many_tags(paging_proxy.upstream.removeprefix("http://"), repo, ["1.8.4-0"])
    paging_proxy.faults.append(
        Fault(429, count=2, path_contains="/tags/list", headers=(("Retry-After", "7"),))
    )
    digest = push_many_tags(paging_proxy.upstream.removeprefix("http://"), repo, ["1.8.4-1"])
    paging_proxy.faults.append(
        Fault(429, path_contains="/manifests/", method="DELETE", headers=(("Retry-After", "2"),))
    )
    waits: list[float] = []
    with RegistryClient(paging_proxy.host) as client:
        client._sleep = waits.append
        assert sorted(client.list_tags(repo)) == ["1.8.4-0", "1.8.4-1"]
        assert waits == [7.0, 7.0]
        assert client.delete_manifest(repo, digest["1.8.4-1"]) is True
        assert waits == [7.0, 7.0, 2.0]


def test_a_rate_limit_that_does_not_end_is_one_sentence(
    paging_proxy: PaginatingProxy, repo: str
) -> None:
    paging_proxy.faults.append(
        Fault(429, count=10, path_contains="/tags/list", headers=(("Retry-After", "3600"),))
    )
    with RegistryClient(paging_proxy.host) as client:
        client._sleep = lambda _s: pytest.fail("must not wait an hour")
        with pytest.raises(OperationError) as info:
            client.list_tags(repo)
    assert str(info.value) == (
        f"registry {paging_proxy.host} is limiting requests (HTTP 429) (UNAVAILABLE injected "
        "fault); try again in 3600 s."
    )


def test_retry_after_as_seconds_or_http_date() -> None:
    assert retry_after_s("5", 1) == 5.0
    assert retry_after_s(None, 1) == 1
    assert retry_after_s("Thu, 03 Dec 2026 08:00:30 GMT", 1, now=1796284800.0) == 30.0
    assert retry_after_s("garbage", 1.5) == 1.5


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (405, "UNSUPPORTED", r"does not allow deleting images \(HTTP 405\)"),
        (
            403,
            "DENIED",
            r"does not let anonymous access delete images in .* \(HTTP 403\): "
            r"the identity needs delete permission on the repository \(on Azure Container "
            r"Registry the AcrDelete role\)",
        ),
    ],
)
def test_refused_deletes_say_why_and_change_nothing(
    paging_proxy: PaginatingProxy, repo: str, status: int, code: str, expected: str
) -> None:
    digest = push_many_tags(paging_proxy.upstream.removeprefix("http://"), repo, ["1.8.4-0"])
    paging_proxy.faults.append(
        Fault(status, count=5, path_contains="/manifests/", method="DELETE", code=code)
    )
    with RegistryClient(paging_proxy.host) as client:
        with pytest.raises(DeleteNotAllowedError, match=expected):
            client.delete_manifest(repo, digest["1.8.4-0"])
        assert client.tag_exists(repo, "1.8.4-0")


def test_acr_names_the_acrdelete_role() -> None:
    client = RegistryClient("myacr.azurecr.io/team")
    assert "the AcrDelete role" in client._delete_refused(401, "team/app")


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_a_catalog_the_registry_does_not_offer(plain_registry: LocalRegistry, status: int) -> None:
    with PaginatingProxy(plain_registry.url) as proxy:
        proxy.faults.append(Fault(status, path_contains="/v2/_catalog"))
        with (
            RegistryClient(proxy.host) as client,
            pytest.raises(CatalogUnavailableError, match="does not list its repositories"),
        ):
            client.catalog("team")
