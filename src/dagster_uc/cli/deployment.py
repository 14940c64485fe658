"""`dagster-uc deployment ...`: name, deploy, list, delete, revive, check, rollback, prune."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dagster_uc import output
from dagster_uc.cli.base import (
    NameOption,
    OutputFormat,
    OutputOption,
    TimeoutOption,
    WaitOption,
    command_group,
    load,
    new_steps,
    open_session,
    run,
)
from dagster_uc.errors import UsageError
from dagster_uc.output import last_error
from dagster_uc.progress import format_seconds, show_summary

deployment_app = command_group("deployment", "Manage the user-code deployment of a branch.")


SuffixOption = Annotated[
    str | None,
    typer.Option("--deployment-name-suffix", "-s", help="Appended to the branch part."),
]
DeploymentNameOption = Annotated[
    str | None,
    typer.Option("--deployment-name", "-n", help="Use this name instead of the computed one."),
]


@deployment_app.command("name")
def deployment_name(
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch", help="Compute the name for this branch instead of the checkout's."
        ),
    ] = None,
    suffix: SuffixOption = None,
    explicit: DeploymentNameOption = None,
    output_format: OutputOption = OutputFormat.text,
) -> None:
    """Print the deployment name, UI name, BRANCH_NAME and image repository of the checkout."""

    def body() -> None:
        from dagster_uc.context import image_repository_for, resolve_deployment_name

        loaded = load()
        name = resolve_deployment_name(
            loaded.config, Path.cwd(), branch=branch, suffix=suffix, explicit=explicit
        )
        info = {
            "name": name.name,
            "ui_name": name.ui_name,
            "branch_name": name.branch_part,
            "image_repository": image_repository_for(loaded.config, name),
        }
        if output_format is OutputFormat.json:
            output.print_json({**info, "project": name.project, "environment": loaded.environment})
            return
        output.result(f"deployment name:  {info['name']}")
        output.result(f"UI name:          {info['ui_name']}")
        output.result(f"BRANCH_NAME:      {info['branch_name']}")
        output.result(f"image repository: {info['image_repository']}")

    run(body)


@deployment_app.command("deploy")
def deployment_deploy(
    suffix: SuffixOption = None,
    explicit: DeploymentNameOption = None,
    skip_build: Annotated[
        bool, typer.Option("--skip-build", "-b", help="Deploy the newest existing image.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Always reload Dagster's webserver and daemon.")
    ] = False,
    reset_lock: Annotated[
        bool, typer.Option("--reset-lock", "-r", help="Take over the deploy lock at once.")
    ] = False,
    use_sudo: Annotated[
        bool, typer.Option("--use-sudo", "-u", help="Run podman with sudo.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and the diffs; change nothing.")
    ] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 300,
    output_format: OutputOption = OutputFormat.text,
) -> None:
    """Build the checked-out branch, push it with a new tag and roll it out as a code location.

    With -o json one JSON object is printed on stdout at the end (also on failure) and nothing
    else; progress stays on stderr."""
    as_json = output_format is OutputFormat.json
    steps = new_steps()
    report: dict[str, Any] = {"ok": False}

    def body() -> None:
        from dagster_uc.deploy import DeployOptions, deploy
        from dagster_uc.rollout import RolloutFailed

        loaded = load()
        deploy_options = DeployOptions(
            suffix=suffix,
            deployment_name=explicit,
            skip_build=skip_build,
            force=force,
            reset_lock=reset_lock,
            use_sudo=use_sudo,
            dry_run=dry_run,
            wait=wait,
            timeout_s=timeout,
        )
        try:
            # -o json: whatever would go to stdout on the way (a plan, podman's output) goes
            # to stderr, so stdout carries the one JSON object only.
            with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
                result = deploy(loaded.config, deploy_options, cwd=Path.cwd(), steps=steps)
        except RolloutFailed as exc:
            report["diagnosis"] = exc.diagnosis
            steps.close()
            if not as_json:
                output.result(exc.diagnosis)
            raise
        finally:
            steps.close()
        report.update(ok=True, dry_run=dry_run)
        if dry_run:
            return
        plan = result.plan
        report.update(
            name=plan.name.name,
            ui_name=plan.name.ui_name,
            image=plan.image,
            tag=plan.tag,
            ui_url=result.url,
            reloaded=_reloaded(result.restarted, plan.new_location or plan.restart_dagster),
            restarted=list(result.restarted),
            waited=wait,
        )
        if as_json:
            return
        state = "rolled out" if not wait else "is up"
        rows = [("image", plan.image), ("tag", plan.tag)]
        if result.url:
            rows.insert(0, ("UI", result.url))
        rows.append(("reloaded", report["reloaded"]))
        rows.append(("total", format_seconds(steps.total_seconds)))
        show_summary(f"Code location {plan.name.ui_name} {state} with image {plan.image}.", rows)
        if result.url and not output.is_tty(sys.stdout):
            output.result(result.url)

    try:
        run(body)
    except typer.Exit as exc:
        if as_json:
            if exc.exit_code:
                report.update(ok=False, exit_code=exc.exit_code, error=last_error())
            report.update(steps=steps.to_json(), total_seconds=round(steps.total_seconds, 3))
            output.print_json(report)
        raise
    if as_json:
        report.update(steps=steps.to_json(), total_seconds=round(steps.total_seconds, 3))
        output.print_json(report)


def _reloaded(restarted: list[str], dagster_changed: bool) -> str:
    """What of Dagster a deploy reloaded, in words."""
    if restarted:
        return "restarted " + ", ".join(restarted)
    if dagster_changed:
        return "Dagster's webserver reloaded its workspace (no restart)"
    return "only the code server (the set of locations is unchanged)"


@deployment_app.command("list")
def deployment_list(output_format: OutputOption = OutputFormat.text) -> None:
    """List the deployments registered on the cluster."""

    def body() -> None:
        from dagster_uc.lifecycle import list_deployments

        rows = list_deployments(open_session(load()))
        if output_format is OutputFormat.json:
            output.print_json([row.to_json() for row in rows])
            return
        if not rows:
            output.result("No deployments are registered on the cluster.")
            return
        header = ("NAME", "UI NAME", "TAG", "DEPLOYED", "BY", "COMMIT", "READY")
        table = [header] + [
            (
                r.name,
                r.ui_name,
                r.tag or "-",
                r.deployed_at or "-",
                r.deployed_by or "-",
                (r.commit or "-")[:10],
                f"{r.ready}/{r.pods}",
            )
            for r in rows
        ]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        for row in table:
            output.result(
                "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )

    run(body)


@deployment_app.command("delete")
def deployment_delete(
    name: Annotated[
        list[str] | None,
        typer.Option(
            "--name",
            "-n",
            metavar="NAME",
            help="Deployment to delete (the UI name with ':' works too); repeat for several.",
        ),
    ] = None,
    branch: Annotated[
        list[str] | None,
        typer.Option(
            "--branch",
            "-b",
            metavar="BRANCH",
            help="Delete the deployment of this branch; repeat for several.",
        ),
    ] = None,
    delete_all: Annotated[
        bool, typer.Option("--all", "-a", help="Delete every deployment.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    reset_lock: Annotated[
        bool, typer.Option("--reset-lock", "-r", help="Take over the deploy lock at once.")
    ] = False,
) -> None:
    """Delete deployments (default: the current branch's) in one Helm rollout."""

    def body() -> None:
        from dagster_uc.context import resolve_deployment_name
        from dagster_uc.errors import OperationError
        from dagster_uc.lifecycle import delete_deployments, resolve_names
        from dagster_uc.values import entries

        if sum(bool(x) for x in (name, branch, delete_all)) > 1:
            raise UsageError("Give only one of --name, --branch and --all.")
        loaded = load()
        session = open_session(loaded)
        values = session.state.read().values
        if delete_all:
            names = [e["name"] for e in entries(values)]
            if not names:
                output.result("No deployments are registered on the cluster; nothing to delete.")
                return
            if not yes:
                try:
                    confirmed = typer.confirm(
                        f"Delete all {len(names)} deployments ({', '.join(names)})?",
                        default=False,
                        err=True,
                    )
                except typer.Abort:
                    confirmed = False
                if not output.is_tty(sys.stdin):
                    sys.stderr.write("\n")  # the answer came from a pipe: end the prompt's line
                if not confirmed:
                    raise OperationError(
                        "Nothing was deleted; answer 'y' or pass --yes to delete every deployment."
                    )
        elif name:
            names = resolve_names(values, name)
        else:
            branches: list[str | None] = list(branch) if branch else [None]
            computed = [
                resolve_deployment_name(loaded.config, Path.cwd(), branch=b).name for b in branches
            ]
            names = resolve_names(values, computed)
        deleted = delete_deployments(
            session, list(dict.fromkeys(names)), steps=new_steps(), reset_lock=reset_lock
        )
        output.success("Deleted " + ", ".join(deleted) + ".")

    run(body)


@deployment_app.command("revive")
def deployment_revive(
    name: Annotated[str, typer.Option("--name", "-n", help="Deployment name to bring back.")],
    tag: Annotated[str, typer.Option("--tag", "-t", help="Existing image tag to deploy.")],
    wait: WaitOption = True,
    timeout: TimeoutOption = 300,
) -> None:
    """Deploy a removed deployment again from an image tag already in the registry."""

    def body() -> None:
        from dagster_uc.lifecycle import revive

        image = revive(
            open_session(load()), name, tag, steps=new_steps(), wait=wait, timeout_s=timeout
        )
        output.success(f"Revived {name} with image {image}.")

    run(body)


@deployment_app.command("check")
def deployment_check(
    name: NameOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", "-t", help="Seconds to follow the log.")
    ] = 60,
    output_format: OutputOption = OutputFormat.text,
) -> None:
    """Show pod status and events, and follow the log until the code server has started.

    Exit code 0 when the code server reported that it started, 1 when the timeout passed."""

    def body() -> None:
        from dagster_uc.context import resolve_deployment_name
        from dagster_uc.errors import OperationError
        from dagster_uc.lifecycle import check

        loaded = load()
        target = name or resolve_deployment_name(loaded.config, Path.cwd()).name
        as_json = output_format is OutputFormat.json
        log: list[str] = []
        header = [False]

        def line(text: str) -> None:
            log.append(text)
            if as_json:
                return
            if not header[0]:
                header[0] = True
                output.result("Log:")
            output.result(f"  | {text}")

        result = check(
            open_session(loaded),
            target,
            timeout_s=timeout,
            on_status=(lambda _t: None) if as_json else output.result,
            on_line=line,
        )
        if as_json:
            output.print_json(result.to_json(log))
        elif result.pod is None:
            output.result(f"No pod of {result.name} appeared within {timeout:g} s.")
        if not result.started:
            if not as_json:
                from dagster_uc.pods import format_diagnosis

                output.result("Status now:")
                output.result(format_diagnosis(result.diagnosis))
            raise OperationError(
                f"The code server of {result.name} did not report that it started within "
                f"{timeout:g} s; see its log and events above."
            )
        output.success(f"The code server of {result.name} has started.")

    run(body)


@deployment_app.command("rollback")
def deployment_rollback(
    name: Annotated[str, typer.Option("--name", "-n", help="Deployment to roll back.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Tag to go back to (default: the previous one).")
    ] = None,
    wait: WaitOption = True,
    timeout: TimeoutOption = 300,
) -> None:
    """Go back to the previous (or a given) image tag of a deployment."""

    def body() -> None:
        from dagster_uc.lifecycle import rollback

        before, after = rollback(
            open_session(load()), name, to, steps=new_steps(), wait=wait, timeout_s=timeout
        )
        output.success(f"Rolled {name} back from {before} to {after}.")

    run(body)


@deployment_app.command("prune")
def deployment_prune(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Also remove deployments older than this, e.g. 7d."),
    ] = None,
    include_cicd: Annotated[
        bool, typer.Option("--include-cicd", help="Also consider CI/CD environment deployments.")
    ] = False,
    remote: Annotated[str, typer.Option("--remote", help="Git remote to compare with.")] = "origin",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
    output_format: OutputOption = OutputFormat.text,
) -> None:
    """Remove deployments whose branch is gone from the git remote (and/or older than --older-than)."""

    def body() -> None:
        import datetime as dt

        from dagster_uc import git
        from dagster_uc.config import read_config_file
        from dagster_uc.lifecycle import parse_duration, plan_prune, prune
        from dagster_uc.project import project_name

        age = parse_duration(older_than) if older_than else None
        loaded = load()
        branches = git.remote_branches(git.repo_root(Path.cwd()), remote)
        project = project_name(Path.cwd()) if loaded.config.use_project_name else None
        environments = {k for k in read_config_file(loaded.path) if k != "defaults"}
        session = open_session(loaded)
        candidates = plan_prune(
            session.state.read().values,
            remote_branches=branches,
            project=project,
            environments=environments,
            older_than=age,
            include_cicd=include_cicd,
            now=dt.datetime.now(dt.timezone.utc),
        )
        removed = prune(session, candidates, steps=new_steps(), dry_run=dry_run)
        if output_format is OutputFormat.json:
            output.print_json(
                {
                    "dry_run": dry_run,
                    "removed": [{"name": c.name, "reason": c.reason} for c in removed],
                }
            )
            return
        if not removed:
            output.result("Nothing to prune.")
        for c in removed:
            output.result(f"{'would remove' if dry_run else 'removed'} {c.name}: {c.reason}")

    run(body)
