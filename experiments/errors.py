"""The error of a request that cannot be carried out as asked (exit code 2 with its one-line message)."""


class UsageError(ValueError):
    """Bad input found while a command runs: a busy or non-empty output folder, settings that would mix."""
