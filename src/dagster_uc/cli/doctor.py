"""`dagster-uc doctor`: every check a deploy needs, one line each; exit 1 when one fails."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from dagster_uc import output
from dagster_uc.cli.base import OutputFormat, OutputOption, app, load, options, run

_COLOURS = {"ok": "32", "warning": "33", "failed": "1;31", "skipped": "2"}


@app.command("doctor")
def doctor(output_format: OutputOption = OutputFormat.text) -> None:
    """Check everything a deploy needs, without changing anything.

    One line per check (ok, warning, failed, skipped) with the fix for each failure. Exit code
    0 when a deploy can go ahead, 1 when a check failed."""

    def body() -> int:
        from dagster_uc.doctor import exit_code, render_text, run_doctor, summary, to_json

        results = run_doctor(load, Path.cwd())
        if output_format is OutputFormat.json:
            output.print_json(to_json(results, environment=options.environment))
            return exit_code(results)
        for line, result in zip(render_text(results), _owners(results), strict=True):
            status, _, rest = line.partition(" ")
            if result is not None:
                line = output.styled(status, _COLOURS[status], sys.stdout) + " " + rest
            output.result(line)
        output.result()
        output.result(summary(results))
        return exit_code(results)

    code = run(body)
    raise typer.Exit(code)


def _owners(results: list) -> list:
    """For each rendered line, its result when the line starts with the status (else None)."""
    owners = []
    for r in results:
        owners.append(r)
        if r.fix and r.status in ("failed", "warning"):
            owners.extend([None] * len(r.fix.splitlines()))
    return owners
