"""Thin adapter over the OCI distribution HTTP API (tags, manifests, catalog).

Only what dagster-uc needs: list tags (every page), check a tag, read a manifest digest,
delete a manifest, list repositories. Split along its seams: ``names`` (what a configured
registry names), ``credentials`` (podman/docker auth files), ``connection`` (transport,
proxies, retries, authentication challenges), ``client`` (the API calls).
"""

from __future__ import annotations

from dagster_uc.registry.client import (
    MANIFEST_ACCEPT,
    CatalogUnavailableError,
    DeleteNotAllowedError,
    RegistryClient,
    RegistryNotFoundError,
    connect,
)
from dagster_uc.registry.connection import parse_challenge
from dagster_uc.registry.credentials import Credentials, auth_file_candidates, load_credentials
from dagster_uc.registry.names import RegistryAddress, is_loopback, parse_registry

__all__ = [
    "MANIFEST_ACCEPT",
    "CatalogUnavailableError",
    "Credentials",
    "DeleteNotAllowedError",
    "RegistryAddress",
    "RegistryClient",
    "RegistryNotFoundError",
    "auth_file_candidates",
    "connect",
    "is_loopback",
    "load_credentials",
    "parse_challenge",
    "parse_registry",
]
