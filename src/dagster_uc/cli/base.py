"""The root `dagster-uc` command, global options, option types shared by the command groups,
and the one place that maps errors to exit codes (`run`)."""

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
from dagster_uc.errors import DagsterUcError

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


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


@dataclass
class GlobalOptions:
    environment: str = "dev"
    config_file: Path | None = None
    verbose: bool = False


options = GlobalOptions()


def command_group(name: str, help: str) -> typer.Typer:
    """A `dagster-uc <name> ...` group of commands, registered on the root command."""
    group = typer.Typer(name=name, help=help, no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(group)
    return group


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
        try:
            return function()
        finally:
            _close_steps()
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


_open_steps: list[Any] = []


def new_steps() -> Any:
    """The progress of a command; `run` stops its live display when the command ends."""
    from dagster_uc.progress import Steps

    steps = Steps()
    _open_steps.append(steps)
    return steps


def _close_steps() -> None:
    while _open_steps:
        _open_steps.pop().close()


def open_session(loaded: LoadedConfig) -> Any:
    from dagster_uc.session import Session

    return Session(loaded.config)


def main() -> None:
    """Entry point of the `dagster-uc` command."""
    try:
        app(prog_name="dagster-uc")
    except KeyboardInterrupt:
        output.error("Interrupted.")
        sys.exit(130)
