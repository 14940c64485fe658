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


_options = GlobalOptions()

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
    except typer.Exit:
        raise
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

    loaded = load_config(_options.environment, _options.config_file)
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
    _options.environment = environment
    _options.config_file = config_file
    _options.verbose = verbose or _env_verbose()
    output.set_verbose(_options.verbose)


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
        if no_input:
            environment, values = _options.environment, {}
        else:
            try:
                environment, values = init.ask(typer.prompt, typer.confirm)
            except typer.Abort:
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
        typer.Option("--branch", help="Compute the name for this branch instead of the checkout's."),
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


def main() -> None:
    """Entry point of the `dagster-uc` command."""
    try:
        app(prog_name="dagster-uc")
    except KeyboardInterrupt:
        output.error("Interrupted.")
        sys.exit(130)
