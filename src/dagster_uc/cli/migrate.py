"""`dagster-uc migrate --to per-location|shared`: move every code location between the shared
Helm release and releases of their own (see docs/release-modes.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from dagster_uc import output
from dagster_uc.cli.base import app, load, new_steps, open_session, run


@app.command("migrate")
def migrate_command(
    to: Annotated[
        str,
        typer.Option(
            "--to", help="Target layout: per-location (a release per location) or shared."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show which location moves where.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds to wait for each moved location to be ready."),
    ] = 300,
    reset_lock: Annotated[
        bool, typer.Option("--reset-lock", "-r", help="Take over the deploy lock at once.")
    ] = False,
) -> None:
    """Move every location to its own Helm release (or back to the shared one), each new
    Deployment ready before the old one goes; resumable, run it again after an interruption."""

    def body() -> None:
        from dagster_uc.migrate import migrate

        plan = migrate(
            open_session(load()),
            to,
            steps=new_steps(),
            dry_run=dry_run,
            timeout_s=timeout,
            reset_lock=reset_lock,
        )
        if not dry_run:
            moved = [m.name for m in plan.moves if not m.done]
            output.success(
                f"Moved {len(moved)} location(s) to {to} releases"
                + (f": {', '.join(moved)}" if moved else "")
                + "."
            )

    run(body)
