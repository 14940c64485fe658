"""`deployment deploy`: plan (name, image, tag, documents), then build, push and roll out.

The stages, in order: resolve the name → check the cluster's Dagster version → choose and
reserve a never-used tag → build and push (outside the lock, so branches build in parallel)
→ under the deploy lock, write the state and roll it out (see `rollout.apply_change`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster_uc import git, output
from dagster_uc.azure import login_registry
from dagster_uc.build import (
    BuildRequest,
    BuildSecret,
    Podman,
    check_build_secrets,
    resolve_build_env_vars,
)
from dagster_uc.context import image_repository_for, resolve_deployment_name
from dagster_uc.errors import DagsterUcError, OperationError, UsageError
from dagster_uc.helm import chart_source
from dagster_uc.instance import cluster_dagster_version
from dagster_uc.registry import is_loopback
from dagster_uc.release_mode import (
    PER_LOCATION,
    location_release_name,
    location_values,
    mode_of,
    release_of,
)
from dagster_uc.rollout import WaitTarget, apply_change_locked
from dagster_uc.rollout_location import apply_location_change
from dagster_uc.session import Session
from dagster_uc.state import StateSnapshot, dump_yaml
from dagster_uc.values import (
    DeploymentRecord,
    build_entry,
    entry_tag,
    find_entry,
    record_of,
    upsert_entry,
)
from dagster_uc.versioning import next_tag, parse_version_tag
from dagster_uc.workspace import workspace_yaml
from dagster_uc.workspace_owner import read_workspace_owner

if TYPE_CHECKING:
    from dagster_uc.config import Config
    from dagster_uc.naming import DeploymentName
    from dagster_uc.progress import Steps


@dataclass(frozen=True)
class DeployOptions:
    suffix: str | None = None
    deployment_name: str | None = None
    skip_build: bool = False
    force: bool = False
    reset_lock: bool = False
    use_sudo: bool = False
    dry_run: bool = False
    wait: bool = True
    timeout_s: float = 300


@dataclass(frozen=True)
class DeployPlan:
    name: DeploymentName
    repository: str
    tag: str
    entry: dict[str, Any]
    record: DeploymentRecord
    new_location: bool
    restart_dagster: bool

    @property
    def image(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class DeployResult:
    plan: DeployPlan
    url: str | None
    restarted: list[str]


def deployer_identity() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def location_url(config: Config, ui_name: str) -> str | None:
    if not config.dagster_gui_url:
        return None
    return f"{config.dagster_gui_url.rstrip('/')}/locations/{ui_name}/assets"


def check_dagster_version(session: Session) -> None:
    """Stop before anything changes when the cluster runs another Dagster version."""
    config = session.config
    found = cluster_dagster_version(
        session.client, config.namespace, config.dagster_daemon_deployment_name
    )
    if found.version is None:
        output.warning(
            f"Could not read the cluster's Dagster version ({found.source}); "
            f"deploying for Dagster {config.dagster_version} without checking."
        )
        return
    if found.version != config.dagster_version:
        raise UsageError(
            f"Dagster version mismatch: the config says {config.dagster_version} but the cluster "
            f"runs {found.version} ({found.source}); set dagster_version to {found.version}."
        )


def recorded_tags(state: StateSnapshot, name: str) -> list[str]:
    """Every tag the state ever recorded for `name`, including the entry's current one."""
    tags = list(state.history_of(name).tags)
    entry = find_entry(state.values, name)
    if entry is not None and entry_tag(entry):
        tags.append(str(entry_tag(entry)))
    return tags


def latest_version_tag(tags: list[str], dagster_version: str) -> str | None:
    numbered = [(n, t) for t in tags if (n := parse_version_tag(t, dagster_version)) is not None]
    return max(numbered)[1] if numbered else None


def reserve_tag(
    session: Session, name: str, registry_tags: list[str], start: StateSnapshot | None = None
) -> tuple[str, StateSnapshot]:
    """Choose the next tag and record it in the state (compare-and-swap), so no other deploy
    of the same name, on any machine, can get it too. Returns the tag and the state written."""
    chosen: dict[str, str] = {}

    def take(state: StateSnapshot) -> StateSnapshot:
        tag = next_tag(session.config.dagster_version, registry_tags, recorded_tags(state, name))
        chosen["tag"] = tag
        return state.with_history(name, state.history_of(name).with_tag(tag))

    _, written = session.state.update(take, start=start)
    return chosen["tag"], written


def deploy(
    config: Config,
    options: DeployOptions,
    *,
    cwd: Path,
    steps: Steps,
    session: Session | None = None,
) -> DeployResult:
    session = session or Session(config)
    if config.use_az_login and not options.dry_run:
        _az_login(config, options, steps, session)
    with steps.step("Checking the deployment"):
        name = resolve_deployment_name(
            config, cwd, suffix=options.suffix, explicit=options.deployment_name
        )
        repository = image_repository_for(config, name)
        _check_build_inputs(config, cwd, options)
        check_dagster_version(session)
        owner = read_workspace_owner(
            session.client, config.namespace, config.dagster_workspace_yaml_configmap_name
        )
        if not owner.ok:
            output.warning(owner.message)
        state = session.state.read()
        registry_tags = session.registry.list_tags(session.registry_path(repository))
        steps.note(f"deployment {name.name} (Dagster UI: {name.ui_name}), image {repository}")
        mode = mode_of(session)

    if options.skip_build:
        tag = latest_version_tag(registry_tags, config.dagster_version)
        if tag is None:
            raise UsageError(
                f"--skip-build needs an existing image, but {repository} has no tag for Dagster "
                f"{config.dagster_version}; deploy once without --skip-build."
            )
    else:
        tag = next_tag(config.dagster_version, registry_tags, recorded_tags(state, name.name))

    def make_plan(tag: str, state: StateSnapshot) -> DeployPlan:
        record = DeploymentRecord(
            tag=tag,
            by=deployer_identity(),
            at=now_iso(),
            action="deploy",
            commit=_commit_or_none(cwd),
            branch=None if config.cicd else _git_branch_or_none(cwd),
            cicd=config.cicd,
        )
        new_location = find_entry(state.values, name.name) is None
        return DeployPlan(
            name=name,
            repository=repository,
            tag=tag,
            entry=build_entry(
                config, name=name.name, repository=repository, tag=tag, record=record
            ),
            record=record,
            new_location=new_location,
            restart_dagster=new_location or options.force or config.cicd,
        )

    plan = make_plan(tag, state)
    render_check(session, plan, state, steps)
    if options.dry_run:
        print_plan(session, plan, state)
        return DeployResult(plan, location_url(config, name.ui_name), [])
    if not options.skip_build:
        # Only now, with every input checked, is the tag taken for good (the provisional one
        # may have been taken meanwhile by a concurrent deploy of the same name).
        tag, state = reserve_tag(session, name.name, registry_tags, start=state)
        plan = make_plan(tag, state)

    if not options.skip_build:
        _build_and_push(config, plan, cwd, options, steps)

    def change(current: StateSnapshot) -> StateSnapshot:
        refuse_older(current, plan, config.dagster_version)
        return current.with_deployment(plan.entry, plan.record)

    if mode == PER_LOCATION:
        result = apply_location_change(
            session,
            name.name,
            change,
            steps=steps,
            image=plan.image,
            wait=options.wait,
            timeout_s=options.timeout_s,
            force_restart=options.force or config.cicd,
            start=state,
            reset_lock=options.reset_lock,
        )
        return DeployResult(plan, location_url(config, name.ui_name), result.restarted)

    result = apply_change_locked(
        session,
        change,
        steps=steps,
        reset_lock=options.reset_lock,
        start=state,
        wait_for=lambda _after: [WaitTarget(name.name, plan.image)],
        wait=options.wait,
        timeout_s=options.timeout_s,
        force_restart=options.force or config.cicd,
    )
    return DeployResult(plan, location_url(config, name.ui_name), result.restarted)


def refuse_older(state: StateSnapshot, plan: DeployPlan, dagster_version: str) -> None:
    """Stop a deploy whose build finished after a newer deploy of the same name went out.

    Tags are reserved in order but the lock is taken in build-finish order: without this the
    older build would replace the newer one and report success. Checked under the lock, on
    the state about to be changed; `rollback` and `revive` are the explicit ways back."""
    entry = find_entry(state.values, plan.name.name)
    current = entry_tag(entry) if entry is not None else None
    ours = parse_version_tag(plan.tag, dagster_version)
    theirs = parse_version_tag(current, dagster_version) if current else None
    if entry is None or ours is None or theirs is None or theirs <= ours:
        return
    record = record_of(entry)
    by = f" (deployed by {record.by} at {record.at})" if record else ""
    raise OperationError(
        f"Deployment {plan.name.name} already runs the newer tag {current}{by}; this deploy "
        f"of {plan.tag} finished later and stopped without changing anything (to go back to "
        f"it: dagster-uc deployment rollback -n {plan.name.name} --to {plan.tag})."
    )


def render_check(session: Session, plan: DeployPlan, state: StateSnapshot, steps: Steps) -> None:
    """Render the chart with the planned values (`helm template`, no cluster access) before
    anything is built or pushed: an unreachable chart or values the chart rejects stop here."""
    config = session.config
    chart = chart_source(config)
    release, document = config.helm_release_name, upsert_entry(state.values, plan.entry)
    if mode_of(session) == PER_LOCATION:  # only this location's release, whatever the rest
        release = location_release_name(config.helm_release_name, plan.name.name)
        document = location_values(state.values, plan.entry, release, config.namespace)
    with steps.step(f"Rendering chart {chart.describe()}"):
        session.helm.template(release, chart, dump_yaml(document))


def print_plan(session: Session, plan: DeployPlan, state: StateSnapshot) -> None:
    """What a deploy would do, with the diffs of both documents against the cluster."""
    import difflib

    config = session.config
    after_values = upsert_entry(state.values, plan.entry)
    chart = chart_source(config)
    lines = [
        f"Deployment:   {plan.name.name} (Dagster UI: {plan.name.ui_name})",
        f"BRANCH_NAME:  {plan.name.branch_part}",
        f"Image:        {plan.image}",
        f"Location:     {'new (webserver and daemon will be reloaded)' if plan.new_location else 'existing (only its code server restarts)'}",
        f"Chart:        {chart.ref}{' ' + chart.version if chart.version else ''}",
        f"Release:      {release_of(config, mode_of(session), plan.name.name)} in {config.namespace} ({config.kubernetes_context})",
        "",
        f"Values ConfigMap {config.user_code_deployments_configmap_name}:",
    ]
    lines += _diff(dump_yaml(state.values), dump_yaml(after_values), difflib)
    lines += ["", f"Workspace ConfigMap {config.dagster_workspace_yaml_configmap_name}:"]
    lines += _diff(session.state.read_workspace() or "", workspace_yaml(after_values), difflib)
    lines += ["", "Dry run: nothing was built, pushed or changed."]
    output.result("\n".join(lines))


def _diff(before: str, after: str, difflib: Any) -> list[str]:
    diff = list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), "cluster", "after deploy", lineterm=""
        )
    )
    return diff or ["  (no change)"]


def _git_branch_or_none(cwd: Path) -> str | None:
    """The git branch as git names it (prune compares it with the remote's branches)."""
    try:
        return git.current_branch(cwd)
    except DagsterUcError:
        return None


def _commit_or_none(cwd: Path) -> str | None:
    try:
        return git.head_commit(cwd)
    except DagsterUcError:
        return None


def _check_build_inputs(config: Config, cwd: Path, options: DeployOptions) -> None:
    """Bad build input is a usage error before anything runs anywhere."""
    if options.skip_build:
        return

    root = (cwd / config.repository_root).resolve()
    if not root.is_dir():
        raise UsageError(
            f"repository_root {root} is not a directory; fix repository_root in the config."
        )
    dockerfile = (root / config.dockerfile).resolve()
    if not dockerfile.is_file():
        raise UsageError(
            f"The Dockerfile {dockerfile} does not exist; set dockerfile (relative to repository_root) in the config."
        )
    resolve_build_env_vars(config.docker_env_vars, os.environ)
    check_build_secrets(
        [BuildSecret(id=s.id, env=s.env, src=s.src) for s in config.docker_build_secrets],
        os.environ,
        str(root),
    )


def _podman() -> Any:
    return Podman(on_command=lambda command: output.debug(f"$ {command}"))


def _tls_verify(config: Config) -> bool:
    return not (config.container_registry_insecure or is_loopback(config.container_registry))


def _az_login(config: Config, options: DeployOptions, steps: Steps, session: Session) -> None:
    """Log podman (and Helm, for a chart in the registry) in with an `az acr` token, before the
    registry is first asked for tags; our registry client uses the same token (with
    --use-sudo podman's login lands in root's auth file, which we cannot read)."""
    helm = "helm" if config.container_registry_chart_path and not config.helm_chart_path else None
    with steps.step(f"Logging in to {config.container_registry} with az"):
        credentials = login_registry(
            config.container_registry,
            _podman(),
            helm,
            tls_verify=_tls_verify(config),
            use_sudo=options.use_sudo,
        )
    session.registry.use_credentials(credentials)


def _build_and_push(
    config: Config, plan: DeployPlan, cwd: Path, options: DeployOptions, steps: Steps
) -> None:
    tls_verify = _tls_verify(config)
    podman = _podman()
    request = BuildRequest(
        context_dir=str((cwd / config.repository_root).resolve()),
        dockerfile=config.dockerfile,
        image=plan.image,
        branch_part=plan.name.branch_part,
        env_vars=list(config.docker_env_vars),
        build_secrets=[
            BuildSecret(id=s.id, env=s.env, src=s.src) for s in config.docker_build_secrets
        ],
        use_sudo=options.use_sudo,
        tls_verify=tls_verify,
    )
    with steps.step(f"Building image {plan.image}"):
        podman.build(request, on_output=steps.output)
    with steps.step(f"Pushing image {plan.image}"):
        podman.push(
            plan.image, tls_verify=tls_verify, use_sudo=options.use_sudo, on_output=steps.output
        )
