"""The single error-mapping place of the CLI: exit codes and one-line messages."""

from __future__ import annotations

import pytest
import typer

from dagster_uc import cli
from dagster_uc.errors import ConfigError, OperationError, UsageError


def raising(exc: BaseException):
    def body() -> None:
        raise exc

    return body


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (UsageError("bad usage"), 2, "Error: bad usage"),
        (ConfigError("bad config"), 2, "Error: bad config"),
        (OperationError("it failed"), 1, "Error: it failed"),
        (KeyboardInterrupt(), 130, "Error: Interrupted."),
        (typer.Abort(), 130, "Error: Aborted."),
        (ValueError("boom"), 1, "Error: Unexpected ValueError: boom"),
    ],
)
def test_run_maps_errors_to_exit_codes(
    capsys: pytest.CaptureFixture[str], exc: BaseException, code: int, message: str
) -> None:
    with pytest.raises(typer.Exit) as info:
        cli.run(raising(exc))
    assert info.value.exit_code == code
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert "Traceback" not in err


def test_run_returns_the_value() -> None:
    assert cli.run(lambda: 42) == 42
