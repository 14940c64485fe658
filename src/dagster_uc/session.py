"""The adapters one command needs, built lazily from the configuration.

Commands share this so that every one of them talks to the cluster, Helm and the registry
through the same code (one client, one set of credentials, one error vocabulary).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from dagster_uc.helm import Helm, HelmOptions
from dagster_uc.kube import make_client
from dagster_uc.registry import RegistryClient, connect
from dagster_uc.state import ClusterState

if TYPE_CHECKING:
    from lightkube import Client

    from dagster_uc.config import Config


class Session:
    def __init__(self, config: Config) -> None:
        self.config = config

    @functools.cached_property
    def client(self) -> Client:
        return make_client(self.config.kubernetes_context, self.config.namespace)

    @functools.cached_property
    def state(self) -> ClusterState:
        return ClusterState(self.client, self.config)

    @functools.cached_property
    def helm(self) -> Helm:
        return Helm(
            HelmOptions(
                kube_context=self.config.kubernetes_context,
                namespace=self.config.namespace,
                kubeconfig=None,
                disable_openapi_validation=self.config.helm_disable_openapi_validation,
                skip_schema_validation=self.config.helm_skip_schema_validation,
            )
        )

    @functools.cached_property
    def registry(self) -> RegistryClient:
        return connect(
            self.config.container_registry, insecure=self.config.container_registry_insecure
        )

    def registry_path(self, image_repository: str) -> str:
        """`host/prefix/name` -> `prefix/name`, the repository as the registry API names it."""
        host = self.config.container_registry.rstrip("/").split("/", 1)[0]
        return (
            image_repository.split("/", 1)[1]
            if image_repository.startswith(host + "/")
            else image_repository
        )
