"""Silence what a compiled solver prints to the process's standard output.

OSQP 1.x prints "Polishing not needed ..." from C even with verbose=False (hundreds of lines per episode);
`c_stdout_silenced` points file descriptor 1 at /dev/null around a solve and flushes the C buffers before
restoring it, so nothing the solver printed reaches the terminal or a pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator

_LOCK = threading.RLock()
_DEPTH = threading.local()
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None)
except OSError:  # pragma: no cover - no C library to flush (not POSIX)
    _LIBC = None


def _flush_c() -> None:
    if _LIBC is not None:
        _LIBC.fflush(None)


@contextlib.contextmanager
def c_stdout_silenced() -> Iterator[None]:
    """Within the block, output written to file descriptor 1 (C printf included) is discarded. Nested blocks
    cost nothing (wrap a loop of solves once)."""
    if getattr(_DEPTH, "n", 0):
        yield
        return
    with _LOCK:
        try:
            sys.stdout.flush()
        except (AttributeError, ValueError, OSError):  # no stdout, or closed
            pass
        _flush_c()
        try:
            saved = os.dup(1)
        except OSError:  # no descriptor 1: nothing to protect
            yield
            return
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
        _DEPTH.n = 1
        try:
            yield
        finally:
            _DEPTH.n = 0
            _flush_c()
            os.dup2(saved, 1)
            os.close(saved)
