"""Who owns Dagster's workspace ConfigMap: the pure verdict `deploy` and `doctor` share."""

from __future__ import annotations

from dagster_uc.workspace_owner import workspace_owner


def test_a_configmap_rendered_by_a_helm_release_is_flagged_with_the_fix() -> None:
    owner = workspace_owner(
        {"meta.helm.sh/release-name": "dagster", "meta.helm.sh/release-namespace": "prod"},
        configmap="dagster-workspace-yaml",
        namespace="prod",
    )
    assert not owner.ok and owner.status == "owned-by-release" and owner.release == "dagster"
    assert "\n" not in owner.message, "one line for deploy's warning"
    assert "externalConfigmap=dagster-workspace-yaml" in owner.message
    assert owner.fix is not None
    assert "helm.sh/resource-policy=keep" in owner.fix
    assert "externalConfigmap: dagster-workspace-yaml" in owner.fix
    assert "meta.helm.sh/release-name-" in owner.fix


def test_a_configmap_without_helm_annotations_or_none_at_all_is_fine() -> None:
    mine = workspace_owner({"other": "x"}, configmap="ws", namespace="ns")
    assert mine.ok and mine.status == "ok" and mine.fix is None
    absent = workspace_owner(None, configmap="ws", namespace="ns")
    assert absent.ok and absent.status == "absent"
