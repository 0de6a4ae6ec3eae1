"""The output folder of a command: a lock file against concurrent runs, and no silent loss of results.

`claim(out, results, overwrite, resume)` creates the folder, refuses it (UsageError, exit 2) when another
live run holds its lock or when it already holds results and neither `resume` nor `overwrite` is set, and
holds the lock (`.lock`, JSON with pid, host and start time) until the block ends. A lock left by a dead
process on this host is taken over with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from experiments.errors import UsageError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _create(path: Path) -> bool:
    """Create the lock file with this process's details; False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, fh)
    return True


def acquire(out: Path) -> Path:
    """Take the lock of `out` (created if needed); UsageError naming the holder if a live run has it."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"out = {str(out)!r}: is a file; must be a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / LOCK_FILE
        while not _create(path):
            holder = _holder(path)
            pid, host = holder.get("pid"), holder.get("host")
            if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
                log.warning("%s: taking over the lock of a run that is gone (pid %s, started %s)", out, pid,
                            holder.get("started"))
                path.unlink(missing_ok=True)
                continue
            who = f"pid {pid} on {host} since {holder.get('started')}" if holder else "an unreadable lock"
            raise UsageError(f"out = {str(out)!r}: in use by another run ({who}); wait for it to finish, or "
                             f"delete {path} if that run is gone")
    except OSError as exc:
        raise UsageError(f"out = {str(out)!r}: cannot write there ({exc.strerror or exc})") from None
    return path


@contextlib.contextmanager
def claim(out: str | os.PathLike[str], results: Sequence[str], overwrite: bool = False,
          resume: bool | None = None) -> Iterator[Path]:
    """Hold the lock of `out` for the block; refuse a folder holding any of `results` unless `overwrite` or
    `resume` (None: the command cannot resume) says what to do with them."""
    out = Path(out)
    lock = acquire(out)
    try:
        found = [name for name in results if (out / name).exists()]
        if found and not (resume or overwrite):
            options = "--overwrite" if resume is None else "--resume or --overwrite"
            raise UsageError(f"out = {str(out)!r}: holds results ({', '.join(found)}); use {options}, "
                             "or another --out")
        yield out
    finally:
        lock.unlink(missing_ok=True)
