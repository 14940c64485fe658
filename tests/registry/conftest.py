"""Real docker-registry instances (no auth, htpasswd, token) shared by the registry tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from stack.registry import LocalRegistry, PaginatingProxy


@pytest.fixture(scope="session")
def plain_registry() -> Iterator[LocalRegistry]:
    with LocalRegistry("none") as registry:
        yield registry


@pytest.fixture(scope="session")
def basic_registry() -> Iterator[LocalRegistry]:
    with LocalRegistry("htpasswd") as registry:
        yield registry


@pytest.fixture(scope="session")
def token_registry() -> Iterator[LocalRegistry]:
    with LocalRegistry("token") as registry:
        yield registry


@pytest.fixture
def paging_proxy(plain_registry: LocalRegistry) -> Iterator[PaginatingProxy]:
    with PaginatingProxy(plain_registry.url, max_page=50) as proxy:
        yield proxy


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return f"team/app-{uuid.uuid4().hex[:10]}"
