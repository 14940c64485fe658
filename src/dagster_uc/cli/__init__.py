"""The `dagster-uc` command line: parse arguments, call one function, print.

Only typer and the light modules are imported at start-up (``dagster-uc --help`` stays fast);
pydantic, yaml and the cluster clients are imported inside the commands. Each command group
lives in its own module and registers itself on `app` when imported here.
"""

from __future__ import annotations

from dagster_uc.cli import config_commands, deployment, doctor, image, lock, migrate
from dagster_uc.cli.base import GlobalOptions, OutputFormat, app, load, main, options, run

__all__ = [
    "GlobalOptions",
    "OutputFormat",
    "app",
    "config_commands",
    "deployment",
    "doctor",
    "image",
    "load",
    "lock",
    "main",
    "migrate",
    "options",
    "run",
]
