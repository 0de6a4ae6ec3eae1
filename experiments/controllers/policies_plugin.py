"""Controllers brought by the user: `package.module:ClassName` import paths and the entry-point group
`pev_mpc.policies`, checked against the policy interface by duck typing.

A class qualifies when it can be built without arguments and its instances have `reset(config, scenario,
seed)`, `act(observations)` (PettingZoo dicts), `act_array(obs)` ((N, N_OBS) -> (N,) kW) and a
`last_stats` mapping; subclassing `pev_mpc.policies.Policy` is not required. A package registers a
policy under a short name in its own metadata:

```
[options.entry_points]
pev_mpc.policies =
    my-policy = my_package.policies:MyPolicy
```

An import path is found on sys.path, then in the working directory (appended, so a folder of the user's
named like an installed package never shadows it). On Ray workers the module must be importable as well
(installed, or on the workers' PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import site
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

ENTRY_POINT_GROUP = "pev_mpc.policies"
METHODS: tuple[str, ...] = ("reset", "act", "act_array")

_READ: dict[str, set[str]] = {}
"""Module -> the files opened for reading while it was imported as a plug-in or its class was built (weights,
tables): part of `source_checksum` with the module files."""
_RECORDING: list[tuple[set[str], set[str], str, FrameType]] = []
"""(files read, installed folders, the plug-in's package folder, the frame that opened the block) of the open
`recording_reads` blocks (innermost last)."""
_HOOKED: list[bool] = []
"""[True] once the audit hook is installed (it cannot be removed: installed once, idle outside the blocks)."""


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: inside `recording_reads`, the path of every file the user's code opens for reading: the
    innermost frame outside the installed code (or inside the plug-in's own package, installed or not), below the
    frame that opened the block (not the caller's: a test, a console script), must be the user's, not an import of
    another module (a library's own files read while the plug-in imports it are not the plug-in's)."""
    if event != "open" or not _RECORDING or isinstance(args[0], int) or not isinstance(args[1], str):
        return
    if set(args[1]) & set("wax+"):
        return
    found, installed, own, entry = _RECORDING[-1]
    frame = sys._getframe(1)
    while frame is not None and frame is not entry:
        name = frame.f_code.co_filename
        if name.startswith("<frozen importlib"):
            return
        path = os.path.abspath(name)
        mine = bool(own) and path.startswith(own)
        if not name.startswith("<") and (mine or not any(path.startswith(f) for f in installed)):
            found.add(os.path.abspath(os.fsdecode(os.fspath(args[0]))))
            return
        frame = frame.f_back


@contextmanager
def recording_reads(module: str, entry: FrameType) -> Iterator[set[str]]:
    """The files the user's code (that of the plug-in module `module`'s package included, `_package_folder`)
    opens for reading inside the block that the frame `entry` opens (`_audit`), in the set it yields."""
    installed = _installed_folders()
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED.append(True)
    found: set[str] = set()
    _RECORDING.append((found, installed, _package_folder(module), entry))
    try:
        yield found
    finally:
        _RECORDING.pop()


def _package_folder(module: str) -> str:
    """The folder (with a separator) of the top-level package of `module`, or the file of a top-level module: the
    plug-in's own code, where it is installed too (an entry point's package); '' when not found."""
    try:
        spec = importlib.util.find_spec(module.partition(".")[0])
    except (ImportError, ValueError):
        return ""
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return ""
    origin = os.path.abspath(spec.origin)
    return os.path.join(os.path.dirname(origin), "") if spec.submodule_search_locations is not None else origin


def _record(cls: Any, read: set[str]) -> None:
    """`read` as read by the plug-in class `cls`, under the module that defines it (`_READ`, as `source_checksum`
    looks it up; a class that a package re-exports is not defined in the module its name is imported from)."""
    _READ.setdefault(getattr(cls, "__module__", ""), set()).update(read)


def is_import_path(name: str) -> bool:
    """True for the `package.module:ClassName` form."""
    return ":" in name


def entry_points() -> dict[str, metadata.EntryPoint]:
    """Name -> entry point of every installed policy plug-in."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_class(name: str, key: str = "controller") -> type:
    """The policy class behind an import path or an entry-point name; ValueError naming `key` otherwise."""
    try:
        if is_import_path(name):
            module, _, attr = name.partition(":")
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())  # the user's module beside them; appended: never shadows a package
            with recording_reads(module, sys._getframe()) as read:
                found: Any = importlib.import_module(module)
            for part in attr.split("."):
                found = getattr(found, part)
        else:
            point = entry_points()[name]
            with recording_reads(point.module, sys._getframe()) as read:
                found = point.load()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the user's module does at import is its error
        raise ValueError(f"{key}: cannot load policy {name!r} ({type(exc).__name__}: {exc}); allowed: "
                         f"package.module:ClassName importable here, or an entry point of group "
                         f"{ENTRY_POINT_GROUP!r}") from None
    check_interface(found, name, key)
    _record(found, read)
    return found


def check_interface(cls: Any, name: str, key: str = "controller") -> None:
    """ValueError unless `cls` is a class whose instances can have the policy interface."""
    missing = [m for m in METHODS if not callable(getattr(cls, m, None))]
    if not isinstance(cls, type) or missing:
        raise ValueError(f"{key}: {name!r} is not a policy class (missing: {', '.join(missing) or 'a class'}); "
                         f"allowed: a class with {', '.join(METHODS)} and last_stats")


def is_plugin(name: str) -> bool:
    """True for an import path or a name of the entry-point group."""
    return is_import_path(name) or name in entry_points()


def source_checksum(name: str) -> str:
    """sha256 of the relative names and bytes of the plug-in `name`'s `source_files` ('' when its class has no
    source file): part of a row's settings, so rows of an edited plug-in, of an edited module of the user's that
    it imports, or of a file it read when imported or built (its weights), never pass for rows of the old one."""
    files = source_files(load_class(name).__module__)
    digest = hashlib.sha256()
    for label, path in files.items():
        digest.update(f"{label}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest() if files else ""


def source_files(module: str) -> dict[str, Path]:
    """The source files of the plug-in module `module`, sorted by their relative names: its own file, every
    module file loaded (sys.modules) from under its folder or the working directory, outside the installed
    packages (site-packages, the standard library) and this package's, and every file its code read while
    imported or built (`_READ`, wherever it lies); {} when the module has no file."""
    found = getattr(sys.modules.get(module), "__file__", None)
    if not found:
        return {}
    own = os.path.abspath(found)
    roots = {"plug-in": os.path.dirname(own), "cwd": os.getcwd()}
    installed = _installed_folders()
    loaded = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
    read = sorted(_READ.get(module, ()))
    files = {}
    for path in [os.path.abspath(p) for p in loaded if isinstance(p, str)] + read:
        root = next((r for r, folder in roots.items() if path.startswith(folder + os.sep)), None)
        if not (root or path in read) or not os.path.isfile(path):
            continue
        if path == own or path in read or not any(path.startswith(f) for f in installed):
            label = f"{root}:{Path(os.path.relpath(path, roots[root])).as_posix()}" if root else f"file:{path}"
            files[label] = Path(path)
    return dict(sorted(files.items()))


def _installed_folders() -> set[str]:
    """The folders of installed code, as given and resolved, each ending in a separator: the interpreter's
    library and site-packages folders and those of this package (`provenance.SOURCE_PACKAGES`)."""
    from experiments.outputs.provenance import SOURCE_PACKAGES

    paths = sysconfig.get_paths()
    folders = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    folders += [*site.getsitepackages(), site.getusersitepackages()]
    specs = [importlib.util.find_spec(package) for package in SOURCE_PACKAGES]
    folders += [os.path.dirname(spec.origin) for spec in specs if spec and spec.origin]
    return {os.path.join(resolved(f), "") for f in folders for resolved in (os.path.abspath, os.path.realpath)}


def make(name: str, key: str = "controller") -> Any:
    """A fresh instance of the plug-in `name`, with its `last_stats` checked; ValueError naming `key` otherwise."""
    cls = load_class(name, key)
    try:
        with recording_reads(cls.__module__, sys._getframe()) as read:
            policy = cls()
        _record(cls, read)
    except (TypeError, SystemExit) as exc:
        raise ValueError(f"{key}: {name!r} cannot be made without arguments ({type(exc).__name__}: {exc})") from None
    if not hasattr(policy, "last_stats"):
        raise ValueError(f"{key}: instances of {name!r} have no `last_stats` (a mapping of step statistics)")
    return policy
