"""The exceptions of the command line: a request that cannot be carried out as asked (exit code 2 with its
one-line message), and a stop request (SIGTERM; exit code 143)."""


class UsageError(ValueError):
    """Bad input found while a command runs: a busy or non-empty output folder, settings that would mix."""


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (the lock and the finished results are left in order)."""
