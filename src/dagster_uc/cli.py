"""The `dagster-uc` command line: parse arguments, call one function, print.

Only typer and the light modules are imported at start-up (``dagster-uc --help`` stays fast);
pydantic, yaml and the cluster clients are imported inside the commands.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from dagster_uc import __version__, output
from dagster_uc.errors import DagsterUcError, UsageError

if TYPE_CHECKING:
    from dagster_uc.config import LoadedConfig

T = TypeVar("T")

app = typer.Typer(
    name="dagster-uc",
    help="Deploy any git branch as its own Dagster code location on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
deployment_app = typer.Typer(
    name="deployment",
    help="Manage the user-code deployment of a branch.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(deployment_app)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


@dataclass
class GlobalOptions:
    environment: str = "dev"
    config_file: Path | None = None
    verbose: bool = False


options = GlobalOptions()

OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="Output format.", case_sensitive=False),
]


def _env_verbose() -> bool:
    return os.environ.get("VERBOSE", "").strip().lower() in {"1", "true", "yes", "y", "on"}


def run(function: Callable[[], T]) -> T:
    """Run a command body: DagsterUcError -> one line on stderr and its exit code (2 usage or
    configuration, 1 operation); Ctrl-C -> 130. Tracebacks only when verbose."""
    try:
        return function()
    except DagsterUcError as exc:
        if output.is_verbose():
            traceback.print_exc()
        output.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        output.error("Interrupted.")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.BadParameter):
        raise
    except BrokenPipeError:
        # The reader of our output went away (`dagster-uc list | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(141) from None
    except typer.Abort:
        output.error("Aborted.")
        raise typer.Exit(130) from None
    except Exception as exc:
        if output.is_verbose():
            traceback.print_exc()
        output.error(
            f"Unexpected {type(exc).__name__}: {exc} (run with --verbose for the traceback)."
        )
        raise typer.Exit(1) from None


def load() -> LoadedConfig:
    """The configuration of the selected environment; its `verbose` turns on verbosity."""
    from dagster_uc.config import load_config

    loaded = load_config(options.environment, options.config_file)
    if loaded.config.verbose:
        output.set_verbose(True)
    return loaded


def _version(value: bool) -> None:
    if value:
        output.result(f"dagster-uc {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    environment: Annotated[
        str,
        typer.Option("--environment", "-e", help="Environment section of the config file."),
    ] = "dev",
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config-file",
            "-c",
            help="Config file (default: .config_user_code_deployments.yaml here, else in your home).",
            dir_okay=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug output and tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Deploy any git branch as its own Dagster code location on Kubernetes."""
    options.environment = environment
    options.config_file = config_file
    options.verbose = verbose or _env_verbose()
    output.set_verbose(options.verbose)


@app.command("init-config")
def init_config(
    file: Annotated[Path, typer.Option("--file", "-f", help="File to write.", dir_okay=False)],
    no_input: Annotated[
        bool,
        typer.Option("--no-input", help="Write a commented template with every key's default."),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter configuration file (interactive prompts unless --no-input)."""

    def body() -> None:
        import re

        from dagster_uc import init_config as init

        if file.exists() and not force:
            raise UsageError(f"{file} already exists; pass --force to overwrite it.")
        environment: str = options.environment
        values: dict[str, Any] = {}
        if not no_input:
            try:
                environment, values = init.ask(typer.prompt, typer.confirm)
            except typer.Abort:
                if output.is_tty(sys.stdin):
                    raise KeyboardInterrupt from None
                raise UsageError(
                    "init-config stopped before all questions were answered; "
                    "use --no-input to write a template instead."
                ) from None
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", environment):
            raise UsageError(
                f"'{environment}' is not a usable environment name; use letters, digits, '-', '_' or '.'."
            )
        init.write_config(file, init.render_config(environment, values), force)
        init.check_written(file, environment)
        output.success(
            f"Wrote {file} (environment '{environment}'); review it with "
            f"`dagster-uc -e {environment} -c {file} show-config`."
        )

    run(body)


@app.command("show-config")
def show_config(
    output_format: OutputOption = OutputFormat.text,
    sources: Annotated[
        bool, typer.Option("--sources", help="Name the layer that set each key.")
    ] = False,
) -> None:
    """Show the effective configuration of the environment (secrets masked)."""

    def body() -> None:
        from dagster_uc.config import masked_config

        loaded = load()
        data = masked_config(loaded)
        if output_format is OutputFormat.json:
            document: dict[str, Any] = {
                "environment": loaded.environment,
                "config_file": str(loaded.path),
                "config": data,
            }
            if sources:
                document["sources"] = loaded.sources
            output.print_json(document)
            return
        import yaml

        output.result(f"# environment '{loaded.environment}' from {loaded.path}")
        for key, value in data.items():
            lines = yaml.safe_dump(
                {key: value}, default_flow_style=False, sort_keys=False, width=1000
            ).splitlines()
            if sources:
                lines[0] += f"  # {loaded.sources[key]}"
            for line in lines:
                output.result(line)

    run(body)


@deployment_app.command("name")
def deployment_name(
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch", help="Compute the name for this branch instead of the checkout's."
        ),
    ] = None,
    suffix: Annotated[
        str | None,
        typer.Option("--deployment-name-suffix", "-s", help="Appended to the branch part."),
    ] = None,
    explicit: Annotated[
        str | None,
        typer.Option("--deployment-name", "-n", help="Use this name instead of the computed one."),
    ] = None,
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


image_app = typer.Typer(
    name="image",
    help="Manage deployment images in the registry.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
lock_app = typer.Typer(
    name="lock",
    help="Inspect or release the deploy lock.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(image_app)
app.add_typer(lock_app)

NameOption = Annotated[
    str | None,
    typer.Option("--name", "-n", help="Deployment name (the UI name with ':' works too)."),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the code server to be ready.")
]
WaitOption = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait for the code server to be ready.")
]


def _steps() -> Any:
    from dagster_uc.progress import Steps

    return Steps()


def _session(loaded: LoadedConfig) -> Any:
    from dagster_uc.session import Session

    return Session(loaded.config)


@deployment_app.command("deploy")
def deployment_deploy(
    suffix: Annotated[
        str | None,
        typer.Option("--deployment-name-suffix", "-s", help="Appended to the branch part."),
    ] = None,
    explicit: Annotated[
        str | None,
        typer.Option("--deployment-name", "-n", help="Use this name instead of the computed one."),
    ] = None,
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
) -> None:
    """Build the checked-out branch, push it with a new tag and roll it out as a code location."""

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
            result = deploy(loaded.config, deploy_options, cwd=Path.cwd(), steps=_steps())
        except RolloutFailed as exc:
            output.result(exc.diagnosis)
            raise
        if dry_run:
            return
        plan = result.plan
        state = "rolled out" if not wait else "is up"
        output.success(f"Code location {plan.name.ui_name} {state} with image {plan.image}.")
        if result.restarted:
            output.info("Reloaded " + ", ".join(result.restarted) + ".")
        if result.url:
            output.result(result.url)

    run(body)


@deployment_app.command("list")
def deployment_list(output_format: OutputOption = OutputFormat.text) -> None:
    """List the deployments registered on the cluster."""

    def body() -> None:
        from dagster_uc.lifecycle import list_deployments

        rows = list_deployments(_session(load()))
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
        session = _session(loaded)
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
            session, list(dict.fromkeys(names)), steps=_steps(), reset_lock=reset_lock
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

        image = revive(_session(load()), name, tag, steps=_steps(), wait=wait, timeout_s=timeout)
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
            _session(loaded),
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
            _session(load()), name, to, steps=_steps(), wait=wait, timeout_s=timeout
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
        session = _session(loaded)
        candidates = plan_prune(
            session.state.read().values,
            remote_branches=branches,
            project=project,
            environments=environments,
            older_than=age,
            include_cicd=include_cicd,
            now=dt.datetime.now(dt.timezone.utc),
        )
        removed = prune(session, candidates, steps=_steps(), dry_run=dry_run)
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


@image_app.command("prune")
def image_prune(
    keep: Annotated[
        int, typer.Option("--keep", help="Newest version tags to keep per repository (>= 1).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be deleted.")
    ] = False,
    output_format: OutputOption = OutputFormat.text,
) -> None:
    """Delete all but the newest --keep version tags of each deployment image repository.

    Never a tag that is deployed or in a deployment's recorded history, nor an image a kept
    tag also points to."""

    def body() -> None:
        from dagster_uc.images import prune_images

        results = prune_images(_session(load()), keep=keep, dry_run=dry_run)
        manifests = sum(len(r.plan.deletions) for r in results)
        tags = sum(r.tag_count for r in results)
        if output_format is OutputFormat.json:
            output.print_json(
                {
                    "dry_run": dry_run,
                    "keep": keep,
                    "manifests": manifests,
                    "tags": tags,
                    "repositories": [r.to_json() for r in results],
                }
            )
            return
        verb = "would delete" if dry_run else "deleted"
        for r in results:
            for d in r.plan.deletions:
                output.result(f"{verb} {r.repository}@{d.digest} (tags {', '.join(d.tags)})")
            for s in r.plan.skipped:
                output.result(f"kept {r.repository}:{s.tag}: {s.reason}")
        done = "would be deleted" if dry_run else "deleted"
        output.result(
            f"{manifests} image manifest(s) with {tags} tag(s) {done} in "
            f"{len(results)} repositories."
        )

    run(body)


@lock_app.command("status")
def lock_status(output_format: OutputOption = OutputFormat.text) -> None:
    """Who holds the deploy lock, since when and until when."""

    def body() -> None:
        from dagster_uc.lock import lock_status as read_status

        loaded = load()
        status = read_status(_session(loaded).client, loaded.config)
        if output_format is OutputFormat.json:
            output.print_json(status.to_json())
            return
        output.result(status.describe())

    run(body)


@lock_app.command("release")
def lock_release(
    force: Annotated[
        bool, typer.Option("--force", help="Release a lock held by someone else.")
    ] = False,
) -> None:
    """Release the deploy lock (someone else's only with --force)."""

    def body() -> None:
        from dagster_uc.lock import release_lock

        loaded = load()
        message = release_lock(_session(loaded).client, loaded.config, force=force)
        output.success(message)

    run(body)


def main() -> None:
    """Entry point of the `dagster-uc` command."""
    try:
        app(prog_name="dagster-uc")
    except KeyboardInterrupt:
        output.error("Interrupted.")
        sys.exit(130)
