"""`dagster-uc image prune`: delete old version tags from the registry."""

from __future__ import annotations

from typing import Annotated

import typer

from dagster_uc import output
from dagster_uc.cli.base import OutputFormat, OutputOption, command_group, load, open_session, run

image_app = command_group("image", "Manage deployment images in the registry.")


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

        results = prune_images(open_session(load()), keep=keep, dry_run=dry_run)
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
