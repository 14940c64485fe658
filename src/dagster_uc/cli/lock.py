"""`dagster-uc lock status|release`: inspect or release the deploy lock."""

from __future__ import annotations

from typing import Annotated

import typer

from dagster_uc import output
from dagster_uc.cli.base import OutputFormat, OutputOption, command_group, load, open_session, run

lock_app = command_group("lock", "Inspect or release the deploy lock.")


@lock_app.command("status")
def lock_status(output_format: OutputOption = OutputFormat.text) -> None:
    """Who holds the deploy lock, since when and until when."""

    def body() -> None:
        from dagster_uc.lock import lock_status as read_status
        from dagster_uc.release_mode import location_lock_statuses

        loaded = load()
        client = open_session(loaded).client
        status = read_status(client, loaded.config)
        # The per-location Leases (helm_release_mode per-location): the held ones.
        held = [s for s in location_lock_statuses(client, loaded.config) if s.is_held()]
        if output_format is OutputFormat.json:
            output.print_json({**status.to_json(), "locations": [s.to_json() for s in held]})
            return
        output.result(status.describe())
        for location in held:
            output.result(location.describe())

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
        message = release_lock(open_session(loaded).client, loaded.config, force=force)
        output.success(message)

    run(body)
