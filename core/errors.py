"""Errors that tunewright reports to users as one clear line instead of a traceback."""

import os

DEBUG_ENV = "TUNEWRIGHT_DEBUG"  # set (not 0) to print the traceback behind any reported error


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class TunewrightError(Exception):
    """Base class: the CLI prints ``tunewright: <message>`` and exits non-zero."""


class ConfigError(TunewrightError):
    """The composed config is wrong: names the key and, where known, the valid choices."""


class PluginError(TunewrightError):
    """A plugin failed to load or registered something inconsistent."""


class DataError(TunewrightError):
    """Input data is malformed: names the file and row."""


class RunFolderError(TunewrightError):
    """A run folder lacks what a command needs (config, model, reference profile)."""


class ReleaseBlockedError(TunewrightError):
    """The run's release decision forbids what was asked (an export)."""
