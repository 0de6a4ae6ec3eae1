"""The output folder of a command: a lock file against concurrent runs, and no silent loss of results.

`claim(out, results, overwrite, resume)` creates the folder, refuses it (UsageError, exit 2) when another
live run holds its lock or when it already holds results and neither `resume` nor `overwrite` is set, and
holds the lock (an flock on `.lock`, which holds JSON with pid, host and start time) until the block ends. A
lock left by a process that died (even by SIGKILL or os._exit) is taken over with a warning; `claim` removes
only its own lock file. Every file a command writes there is noted in the folder's manifest (`record`), and
`clear` (--overwrite) removes only those: a user's own files in the folder stay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiments.errors import UsageError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
MANIFEST = ".written"
"""In `out`: the relative path of every file (or folder the tool owns whole, e.g. tb/) a command wrote there, one
a line. `clear` (--overwrite) removes these and nothing else."""


@dataclass
class _Claimed:
    """A folder claimed in this process: the paths its manifest held at the claim, and those written since."""

    out: Path
    earlier: list[str] | None
    """None: the folder had no manifest (an older version's, or a new folder)."""
    fresh: set[str] = field(default_factory=set)


_CLAIMED: list[_Claimed] = []
OWNED_FOLDERS = ("tb", "models")
"""Folders a command owns whole (TensorBoard logs, converted models)."""


def _holder(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def acquire(out: Path) -> tuple[Path, int]:
    """Take the lock of `out` (created if needed): (lock path, descriptor holding it); UsageError naming the
    holder if a live run has it.

    The lock is an flock on `out/.lock`, which the kernel releases when its holder dies however it dies, so a
    lock left behind is taken over without a race: whoever gets the flock of the file that is still at the
    path holds it (a file unlinked by its last holder in between is tried again).
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"out = {str(out)!r}: is a file; must be a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / LOCK_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _holder(path)
                who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}" if holder
                       else "a run starting or ending")
                raise UsageError(f"out = {str(out)!r}: in use by another run ({who}); wait for it to finish") from None
            if os.fstat(fd).st_ino == _inode(path):
                break
            os.close(fd)  # its holder removed that file before we locked it: try the one at the path now
        previous = _holder(path)
        if previous:
            log.warning("%s: taking over the lock of a run that is gone (pid %s, started %s)", out,
                        previous.get("pid"), previous.get("started"))
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
    except OSError as exc:
        raise UsageError(f"out = {str(out)!r}: cannot write there ({exc.strerror or exc})") from None
    return path, fd


def release(path: Path, fd: int) -> None:
    """Remove the lock file if it is still the one `fd` holds, then drop the lock."""
    try:
        if _inode(path) == os.fstat(fd).st_ino:
            path.unlink()
    finally:
        os.close(fd)


@contextlib.contextmanager
def claim(out: str | os.PathLike[str], results: Sequence[str], overwrite: bool = False,
          resume: bool | None = None, outputs: Sequence[str] | None = None) -> Iterator[Path]:
    """Hold the lock of `out` for the block; refuse a folder holding any of `results` unless `overwrite` or
    `resume` (None: the command cannot resume) says what to do with them. With `overwrite` and `outputs` (the
    command's output patterns, for folders without a manifest), what the tool wrote there is removed at once
    (`clear`), so an interrupted run never leaves old and new outputs side by side."""
    out = Path(out)
    lock, fd = acquire(out)
    _CLAIMED.append(_Claimed(out, _entries(out) if (out / MANIFEST).exists() else None))
    try:
        found = [name for name in results if (out / name).exists()]
        if found and not (resume or overwrite):
            options = "--overwrite" if resume is None else "--resume or --overwrite"
            raise UsageError(f"out = {str(out)!r}: holds results ({', '.join(found)}); use {options}, "
                             "or another --out")
        if overwrite and outputs is not None:
            clear(out, outputs)
        yield out
    finally:
        _CLAIMED.pop()
        release(lock, fd)


def _entries(out: Path) -> list[str]:
    """The paths in the manifest of `out` that stay inside it."""
    try:
        lines = (out / MANIFEST).read_text().splitlines()
    except OSError:
        return []
    return [line for line in dict.fromkeys(lines) if line and not Path(line).is_absolute() and ".." not in Path(line).parts]


def record(path: str | os.PathLike[str]) -> None:
    """Note `path` (a file, or a folder the tool owns whole) in the manifest of the folder claimed in this process,
    when it lies inside it (appended, so a run that is killed has noted what it wrote)."""
    if not _CLAIMED:
        return
    claimed = _CLAIMED[-1]
    try:
        relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(claimed.out)).as_posix()
    except ValueError:
        return
    if relative not in claimed.fresh:
        with open(claimed.out / MANIFEST, "a", encoding="utf-8") as handle:
            handle.write(relative + "\n")
        claimed.fresh.add(relative)


def clear(out: Path, legacy: Sequence[str] = ()) -> None:
    """Remove what earlier runs of the tool wrote into `out` (claimed by this process): the paths of its manifest
    not written by this run, and nothing else; in a folder that had no manifest (an older version's), the paths
    matching the `legacy` glob patterns. Folders left empty by it go too."""
    claimed = next(c for c in reversed(_CLAIMED) if c.out == out)
    if claimed.earlier is None:  # folders only where the pattern names a folder the tool owns (tb, models)
        paths = [p for pattern in legacy for p in sorted(out.glob(pattern))
                 if not p.is_dir() or pattern in OWNED_FOLDERS]
    else:
        paths = [out / e for e in claimed.earlier]
    for path in paths:
        relative = path.relative_to(out).as_posix()
        if any(f == relative or f.startswith(f"{relative}/") for f in claimed.fresh):
            continue  # written by this run
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        parent = path.parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    write_lines = "".join(f"{e}\n" for e in sorted(claimed.fresh))
    tmp = out / f"{MANIFEST}.{os.getpid()}"
    tmp.write_text(write_lines)
    os.replace(tmp, out / MANIFEST)
    claimed.earlier = []
