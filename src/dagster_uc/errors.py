"""Errors the CLI turns into one clear sentence and an exit code (never a traceback)."""

from __future__ import annotations


class DagsterUcError(Exception):
    """Base class: the message is shown to the user as is."""

    exit_code = 1


class UsageError(DagsterUcError):
    """Bad input or configuration: exit code 2, nothing changed."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file or environment variables are invalid."""


class OperationError(DagsterUcError):
    """An operation against an external system failed: exit code 1."""

    exit_code = 1
