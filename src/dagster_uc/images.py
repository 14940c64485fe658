"""`image prune`: registry garbage collection of deployment images, through the registry API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dagster_uc import output
from dagster_uc.errors import UsageError
from dagster_uc.naming import image_repository
from dagster_uc.registry import CatalogUnavailableError, parse_registry
from dagster_uc.values import entries, entry_tag
from dagster_uc.versioning import plan_image_prune

if TYPE_CHECKING:
    from dagster_uc.session import Session
    from dagster_uc.versioning import PrunePlan


@dataclass
class RepositoryPrune:
    repository: str
    plan: PrunePlan
    deleted: list[str] = field(default_factory=list)

    @property
    def tag_count(self) -> int:
        return sum(len(d.tags) for d in self.plan.deletions)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "delete": [{"digest": d.digest, "tags": list(d.tags)} for d in self.plan.deletions],
            "kept": list(self.plan.kept),
            "skipped": [{"tag": s.tag, "reason": s.reason} for s in self.plan.skipped],
            "untouched": list(self.plan.untouched),
            "deleted_manifests": list(self.deleted),
        }


def protected_tags(values: dict[str, Any], history: dict[str, Any]) -> dict[str, set[str]]:
    """Per image repository (`host/prefix/name`): tags deployed now or in a recorded history window."""
    protected: dict[str, set[str]] = {}
    for entry in entries(values):
        image = entry.get("image") or {}
        repository = str(image.get("repository", ""))
        tags = protected.setdefault(repository, set())
        if entry_tag(entry):
            tags.add(str(entry_tag(entry)))
        record_history = history.get(entry["name"])
        if record_history is not None:
            tags.update(r.tag for r in record_history.records)
    return protected


def state_repositories(
    session: Session, values: dict[str, Any], history: dict[str, Any]
) -> set[str]:
    """Image repositories (as the registry API names them) of every deployment the cluster
    state knows, deleted ones with a recorded history included."""
    config = session.config
    names = {e["name"] for e in entries(values)} | set(history)
    return {
        session.registry_path(image_repository(config.container_registry, config.image_prefix, n))
        for n in names
    }


def prune_images(session: Session, *, keep: int, dry_run: bool) -> list[RepositoryPrune]:
    """Plan (and unless `dry_run` carry out) the prune of every deployment image repository.

    Repositories are those the cluster state names (deployments and recorded histories), and
    with an image prefix also those the registry's catalog lists under
    `<registry>/<image_prefix>/` when the registry offers a catalog (Harbor to admins only,
    GHCR and Docker Hub not at all). The newest `keep` version tags stay, and so do tags
    deployed now or in a deployment's recorded history window (deleted deployments included,
    so `revive` keeps working), and any digest one of those tags points to.
    """
    if keep < 1:
        raise UsageError(
            "--keep must be at least 1 (the newest image may belong to a deploy in progress)."
        )

    config = session.config
    state = session.state.read()
    protected = protected_tags(state.values, state.history)
    for name, history in state.history.items():
        repo = image_repository(config.container_registry, config.image_prefix, name)
        protected.setdefault(repo, set()).update(r.tag for r in history.records)
    registry = config.container_registry.rstrip("/")
    host = parse_registry(registry).host
    repositories = state_repositories(session, state.values, state.history)
    if config.image_prefix.strip("/"):
        prefix = session.registry_path(f"{registry}/{config.image_prefix.strip('/')}")
        try:
            repositories.update(session.registry.catalog(prefix))
        except CatalogUnavailableError as exc:
            output.info(f"{exc} Pruning the repositories the cluster state names.")
    results = []
    for repository in sorted(repositories):
        digests = session.registry.tag_digests(repository)
        if not digests:
            continue
        full = f"{host}/{repository}"
        plan = plan_image_prune(digests, keep, protected.get(full, set()))
        result = RepositoryPrune(full, plan)
        if not dry_run:
            for deletion in plan.deletions:
                if session.registry.delete_manifest(repository, deletion.digest):
                    result.deleted.append(deletion.digest)
        results.append(result)
    return results
