"""`init-config` and `show-config`: write and show the configuration file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dagster_uc import output
from dagster_uc.cli.base import OutputFormat, OutputOption, app, load, options, run
from dagster_uc.errors import UsageError


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
        from dagster_uc.config_masking import masked_config

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
