"""Registry checks: it answers (TLS as configured) and the login may pull and push the
deployment's image repository. Reads only (a push check starts an upload and cancels it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster_uc.azure import ACR_USERNAME, AzureCli
from dagster_uc.doctor.model import CheckResult, failed, from_error, ok, skipped
from dagster_uc.errors import DagsterUcError
from dagster_uc.registry import Credentials, RegistryClient, connect, is_loopback

if TYPE_CHECKING:
    from dagster_uc.config import Config

#: Seconds for one registry request: a dead registry fails within a few seconds.
REGISTRY_TIMEOUT_S = 3.0


def transport(config: Config, client: RegistryClient) -> str:
    """How the registry is spoken to, as configured: the 'TLS as configured' part."""
    scheme = client.base_url.split("://", 1)[0]
    if scheme == "http":
        why = "loopback" if is_loopback(config.container_registry) else "insecure registry"
        return f"plain HTTP ({why})"
    if config.container_registry_insecure:
        return "HTTPS without certificate verification (container_registry_insecure)"
    return "HTTPS, certificate verified"


def _login_fix(config: Config) -> str:
    host = config.container_registry.split("/", 1)[0]
    if config.use_az_login:
        return f"Run `az login` with an identity that has AcrPull and AcrPush on {host}."
    return f"Log in with `podman login {host}`."


def registry_checks(config: Config, repository: str | None) -> list[CheckResult]:
    """`registry` (answers) and `registry-credentials` (pull and push on `repository`, the
    registry's name for the deployment's image repository)."""
    try:
        client = connect(
            config.container_registry,
            insecure=config.container_registry_insecure,
            repository=repository,
            timeout=REGISTRY_TIMEOUT_S,
        )
    except DagsterUcError as exc:
        return [from_error("registry", exc), skipped("registry-credentials", "no registry client")]
    with client:
        try:
            client.ping()
        except DagsterUcError as exc:
            text = str(exc)
            if "refused access" not in text:
                fix = (
                    "Check container_registry and that the registry runs and is reachable "
                    "from here; for a registry with a self-signed certificate add its CA to "
                    "/etc/containers/certs.d/<host>/ or set container_registry_insecure: true."
                )
                return [
                    failed("registry", text.rstrip("."), fix),
                    skipped("registry-credentials", "the registry does not answer"),
                ]
        reached = ok(
            "registry",
            f"registry {client.registry} answers over {transport(config, client)}",
            url=client.base_url,
        )
        return [reached, _credentials(config, client, repository)]


def _credentials(config: Config, client: RegistryClient, repository: str | None) -> CheckResult:
    name = "registry-credentials"
    if config.use_az_login:
        try:
            token = AzureCli().acr_token(config.container_registry)
        except DagsterUcError as exc:
            return from_error(name, exc)
        client.use_credentials(Credentials(ACR_USERNAME, token, source="az acr login"))
    source = client.credentials.source if client.credentials else None
    login = f"login from {source}" if source else "anonymous access"
    if repository is None:
        return skipped(name, "the image repository is unknown (see the git and project checks)")
    try:
        client.list_tags(repository)
        pushable = client.push_allowed(repository)
    except DagsterUcError as exc:
        return failed(name, from_error(name, exc).message, _login_fix(config), login=login)
    if not pushable:
        return failed(
            name,
            f"{login} may pull {repository} but not push to it",
            _login_fix(config)
            + " The identity needs push rights on the repository (AcrPush on Azure).",
            login=login,
        )
    return ok(name, f"{login} may pull and push {repository}", login=login)
