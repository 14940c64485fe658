"""RegistryClient against the real docker-registry: tags, manifests, deletes, faults."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dagster_uc.errors import OperationError, UsageError
from dagster_uc.registry import RegistryClient, RegistryNotFoundError, is_loopback
from stack.registry import Fault, LocalRegistry, PaginatingProxy, free_port, push_many_tags


def version_tags(count: int, version: str = "1.7.10") -> list[str]:
    return [f"{version}-{i}" for i in range(count)]


def test_missing_repository_has_no_tags(plain_registry: LocalRegistry, repo: str) -> None:
    with RegistryClient(plain_registry.host) as client:
        assert client.list_tags(repo) == []


def test_lists_every_tag_of_the_real_registry(plain_registry: LocalRegistry, repo: str) -> None:
    tags = version_tags(1200)
    push_many_tags(plain_registry, repo, tags)
    with RegistryClient(plain_registry.host, page_size=50) as client:
        assert sorted(client.list_tags(repo)) == sorted(tags)


def test_follows_link_pagination_to_the_last_page(
    plain_registry: LocalRegistry, paging_proxy: PaginatingProxy, repo: str
) -> None:
    tags = version_tags(1200)
    push_many_tags(plain_registry, repo, tags)
    with RegistryClient(paging_proxy.host, page_size=1000) as client:
        listed = client.list_tags(repo)
    assert listed == sorted(tags)
    # the proxy caps pages at 50 tags: 1200 / 50 pages, each read once
    assert paging_proxy.count("/tags/list") == 24


def test_sends_the_page_size(plain_registry: LocalRegistry, repo: str) -> None:
    tags = version_tags(100)
    push_many_tags(plain_registry, repo, tags)
    with PaginatingProxy(plain_registry.url, max_page=1000) as proxy:
        with RegistryClient(proxy.host, page_size=7) as client:
            assert client.list_tags(repo) == sorted(tags)
        assert proxy.count("/tags/list") == 15  # ceil(100 / 7)


def test_catalog_follows_pagination_and_filters_by_prefix(
    plain_registry: LocalRegistry,
) -> None:
    prefix = f"cat{uuid.uuid4().hex[:8]}"
    wanted = [f"{prefix}/deploy-{i:02d}" for i in range(12)]
    for name in [*wanted, f"{prefix}x/other", f"{prefix}"]:
        push_many_tags(plain_registry, name, ["1.0.0-0"])
    with RegistryClient(plain_registry.host, page_size=5) as client:
        found = client.catalog(prefix)
        assert client.request_count >= 3
    assert sorted(found) == sorted([prefix, *wanted])


def test_tag_exists_and_digest(plain_registry: LocalRegistry, repo: str) -> None:
    digests = push_many_tags(plain_registry, repo, ["1.7.10-0", "1.7.10-1"], distinct_digests=True)
    with RegistryClient(plain_registry.host) as client:
        assert client.tag_exists(repo, "1.7.10-1")
        assert not client.tag_exists(repo, "1.7.10-2")
        assert not client.tag_exists(repo + "-missing", "1.7.10-0")
        assert client.manifest_digest(repo, "1.7.10-0") == digests["1.7.10-0"]
        assert digests["1.7.10-0"] != digests["1.7.10-1"]
        with pytest.raises(RegistryNotFoundError, match=r"tag 1\.7\.10-9 does not exist"):
            client.manifest_digest(repo, "1.7.10-9")
        assert client.tag_digests(repo) == digests
        assert client.tag_digests(repo, ["1.7.10-1", "1.7.10-7"]) == {
            "1.7.10-1": digests["1.7.10-1"]
        }


def test_deleting_a_manifest_removes_every_tag_on_it(
    plain_registry: LocalRegistry, repo: str
) -> None:
    shared = push_many_tags(plain_registry, repo, ["1.7.10-0", "1.7.10-1"])
    own = push_many_tags(plain_registry, repo, ["1.7.10-2"], distinct_digests=True)
    assert shared["1.7.10-0"] == shared["1.7.10-1"] != own["1.7.10-2"]
    with RegistryClient(plain_registry.host) as client:
        assert client.delete_manifest(repo, shared["1.7.10-0"]) is True
        assert client.list_tags(repo) == ["1.7.10-2"]
        assert client.delete_manifest(repo, shared["1.7.10-0"]) is False
        assert client.tag_exists(repo, "1.7.10-2")


def test_delete_refused_when_registry_disallows_it(repo: str) -> None:
    with LocalRegistry("none", delete_enabled=False) as registry:
        digest = push_many_tags(registry, repo, ["1.7.10-0"])["1.7.10-0"]
        with RegistryClient(registry.host) as client:
            with pytest.raises(
                OperationError, match=r"does not allow deleting images \(HTTP 405\)"
            ):
                client.delete_manifest(repo, digest)
            assert client.tag_exists(repo, "1.7.10-0")


def test_invalid_names_are_usage_errors(plain_registry: LocalRegistry) -> None:
    with RegistryClient(plain_registry.host) as client:
        with pytest.raises(UsageError):
            client.list_tags("Team/App")
        with pytest.raises(UsageError):
            client.tag_exists("team/app", "../x")
        with pytest.raises(UsageError):
            client.delete_manifest("team/app", "not-a-digest")
    with pytest.raises(UsageError):
        RegistryClient("host with space")


def test_unreachable_registry_is_one_sentence() -> None:
    port = free_port()
    with RegistryClient(f"127.0.0.1:{port}") as client:
        client._sleep = lambda _s: None
        with pytest.raises(OperationError) as info:
            client.list_tags("team/app")
    message = str(info.value)
    assert message.startswith(f"cannot reach registry 127.0.0.1:{port}: ")
    assert message.endswith(".") and "\n" not in message


def test_transport_defaults() -> None:
    assert RegistryClient("myacr.azurecr.io").base_url == "https://myacr.azurecr.io"
    assert RegistryClient("http://registry.lan:5000").base_url == "http://registry.lan:5000"
    assert RegistryClient("http://127.0.0.1:5000").base_url == "http://127.0.0.1:5000"
    assert is_loopback("127.1.2.3:80") and is_loopback("localhost:5000")
    assert is_loopback("[::1]:5000") and not is_loopback("10.0.0.1:5000")


def test_loopback_registry_is_spoken_to_as_it_answers(tmp_path: Path, repo: str) -> None:
    """A registry on this machine: plain HTTP when it serves plain HTTP, verified HTTPS when
    it speaks TLS, and a certificate nobody trusts is an error, never a fallback."""
    with LocalRegistry("none") as plain:
        push_many_tags(plain, repo, ["1.0.0-0"])
        with RegistryClient(plain.host) as client:
            assert client.list_tags(repo) == ["1.0.0-0"]
            assert client.base_url == f"http://{plain.host}"
    with LocalRegistry("none", tls=True) as tls:
        push_many_tags(tls, repo, ["1.0.0-0"])
        with (
            RegistryClient(tls.host, certs_dirs=[tmp_path]) as client,
            pytest.raises(
                OperationError,
                match=r"speaks TLS with a certificate that is not trusted here \(certificate "
                r"verify failed.*add its CA to /etc/containers/certs\.d/",
            ),
        ):
            client.list_tags(repo)
        (tmp_path / tls.host).mkdir()
        assert tls.tls_cert is not None
        (tmp_path / tls.host / "ca.crt").write_bytes(tls.tls_cert.read_bytes())
        with RegistryClient(tls.host, certs_dirs=[tmp_path]) as client:
            assert client.list_tags(repo) == ["1.0.0-0"]
            assert client.base_url == f"https://{tls.host}"


def test_tls_registry_verification(tmp_path: Path, repo: str) -> None:
    with LocalRegistry("none", tls=True) as registry:
        push_many_tags(registry, repo, ["1.0.0-0"])
        with (
            RegistryClient(f"https://{registry.host}", certs_dirs=[tmp_path]) as client,
            pytest.raises(
                OperationError,
                match=r"cannot reach registry .* over HTTPS: certificate verify failed",
            ),
        ):
            client.list_tags(repo)
        # podman's certs.d layout: <dir>/<host:port>/ca.crt
        (tmp_path / registry.host).mkdir()
        assert registry.tls_cert is not None
        (tmp_path / registry.host / "ca.crt").write_bytes(registry.tls_cert.read_bytes())
        with RegistryClient(f"https://{registry.host}", certs_dirs=[tmp_path]) as client:
            assert client.list_tags(repo) == ["1.0.0-0"]
        # insecure: HTTPS without verification first
        with RegistryClient(registry.host, insecure=True) as client:
            assert client.list_tags(repo) == ["1.0.0-0"]
            assert client.base_url.startswith("https://")


def test_insecure_falls_back_to_plain_http(plain_registry: LocalRegistry, repo: str) -> None:
    push_many_tags(plain_registry, repo, ["1.0.0-0"])
    with RegistryClient(plain_registry.host, insecure=True) as client:
        assert client.list_tags(repo) == ["1.0.0-0"]
        assert client.base_url == f"http://{plain_registry.host}"


def test_retries_server_errors_on_reads(
    plain_registry: LocalRegistry, paging_proxy: PaginatingProxy, repo: str
) -> None:
    push_many_tags(plain_registry, repo, ["1.0.0-0"])
    with RegistryClient(paging_proxy.host) as client:
        client._sleep = lambda _s: None
        paging_proxy.faults.append(Fault(503, count=2))
        assert client.list_tags(repo) == ["1.0.0-0"]
        paging_proxy.faults.append(Fault(502, count=1, close_connection=True))
        paging_proxy.faults.append(Fault(500, count=1))
        assert client.tag_exists(repo, "1.0.0-0")


def test_persistent_server_error_is_one_sentence(
    plain_registry: LocalRegistry, paging_proxy: PaginatingProxy, repo: str
) -> None:
    with RegistryClient(paging_proxy.host) as client:
        client._sleep = lambda _s: None
        paging_proxy.faults.append(Fault(503, count=3, path_contains="/tags/list"))
        with pytest.raises(OperationError) as info:
            client.list_tags(repo)
    assert str(info.value) == (
        f"registry {paging_proxy.host} answered HTTP 503 to GET /v2/{repo}/tags/list "
        "(UNAVAILABLE injected fault); try again later."
    )


def test_delete_is_not_retried(
    plain_registry: LocalRegistry, paging_proxy: PaginatingProxy, repo: str
) -> None:
    digest = push_many_tags(plain_registry, repo, ["1.0.0-0"])["1.0.0-0"]
    with RegistryClient(paging_proxy.host) as client:
        paging_proxy.faults.append(Fault(503, count=1, path_contains="/manifests/"))
        with pytest.raises(OperationError, match="answered HTTP 503"):
            client.delete_manifest(repo, digest)
        assert paging_proxy.count("/manifests/") == 1
        assert client.delete_manifest(repo, digest) is True


def test_prune_plan_applied_to_the_real_registry(plain_registry: LocalRegistry, repo: str) -> None:
    from dagster_uc.versioning import plan_image_prune

    push_many_tags(plain_registry, repo, version_tags(30), distinct_digests=True)
    # "latest" and 1.7.10-3 share the image of 1.7.10-2; 1.7.10-5 is deployed
    shared = push_many_tags(plain_registry, repo, ["1.7.10-2", "1.7.10-3", "latest"])
    with RegistryClient(plain_registry.host) as client:
        plan = plan_image_prune(client.tag_digests(repo), keep=10, protected_tags={"1.7.10-5"})
        for deletion in plan.deletions:
            assert client.delete_manifest(repo, deletion.digest)
        left = set(client.list_tags(repo))
    assert left == {f"1.7.10-{i}" for i in range(20, 30)} | {
        "1.7.10-5",
        "1.7.10-2",
        "1.7.10-3",
        "latest",
    }
    assert shared["latest"] == shared["1.7.10-2"]
    assert len(plan.to_delete) == 30 - 10 - 3
