"""docs/commands.md names every command and every option of the installed CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import typer
from typer.core import TyperGroup, TyperOption

from dagster_uc.cli import app

PAGE = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


def commands(group: TyperGroup, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, object]]:
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, TyperGroup):
            yield from commands(command, path)
        else:
            yield " ".join(path), command


def test_every_command_and_option_is_documented() -> None:
    page = PAGE.read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    missing = []
    found = list(commands(root))
    assert len(found) >= 14
    for path, command in found:
        if f"`{path}" not in page and f"dagster-uc {path}" not in page:
            missing.append(path)
        for param in command.params:  # type: ignore[attr-defined]
            longest = max(param.opts, key=len) if isinstance(param, TyperOption) else None
            if longest and longest != "--help" and longest not in page:
                missing.append(f"{path} {longest}")
    for param in root.params:
        if isinstance(param, TyperOption) and max(param.opts, key=len) not in page:
            missing.append(f"global {max(param.opts, key=len)}")
    assert not missing, f"not in docs/commands.md: {missing}"
