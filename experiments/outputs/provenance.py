"""What produced a result: package versions and the machine, the canonical form of the settings and their
fingerprint (a short hash recorded in every row of metrics.csv)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE = "pev-mpc"
FINGERPRINT_LENGTH = 12
SOURCE_PACKAGES = ("experiments", "pev_env", "pev_mpc")
"""The packages of this project whose Python sources `code_checksum` hashes."""
_PACKAGES = ("numpy", "scipy", "cvxpy", "osqp", "gymnasium", "pettingzoo", "pandas", "torch", "stable-baselines3")


def version_of(name: str) -> str | None:
    """The installed version of the distribution `name` (None when not installed)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_version() -> str:
    """The version of this project (pev-mpc), 'unknown' when it is not installed."""
    return version_of(PACKAGE) or "unknown"


@functools.lru_cache(maxsize=1)
def code_checksum() -> str:
    """SHA-256 (hex) of the relative paths and bytes of every .py file of SOURCE_PACKAGES, as imported: code
    changed under an unchanged version string changes it (and so the fingerprints of the rows)."""
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        spec = importlib.util.find_spec(package)
        root = Path(spec.origin).parent if spec and spec.origin else None
        for path in sorted(root.rglob("*.py")) if root else ():
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def environment_info() -> dict[str, Any]:
    """Python, platform, CPU count and the installed versions of the key packages."""
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "code_sha256": code_checksum(),
            "packages": {PACKAGE: package_version(), **{name: version_of(name) for name in _PACKAGES}}}


def to_dict(value: Any) -> Any:
    """JSON-friendly form of a configuration: dataclasses (nested too) and mappings -> dicts, tuples -> lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_dict(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_dict(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def canonical(value: Any) -> str:
    """The canonical serialisation: compact JSON of `to_dict(value)` with sorted keys."""
    return json.dumps(to_dict(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def fingerprint(value: Any) -> str:
    """Short hash (hex) of the canonical serialisation of `value`."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:FINGERPRINT_LENGTH]


def file_checksum(*paths: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of the bytes of `paths`, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings, as 'key: old -> new'."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(unset)"), new.get(key, "(unset)")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += differing_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


def plant_record(config: Any) -> dict[str, Any]:
    """What identifies the plant that ran (its plant fingerprint): the EnvConfig fields, and the sha256 of a
    network file it read (`network_files`), so that an edited file is another plant."""
    from pev_env.network import network_files

    files = network_files(config.network)
    return {**config.as_dict(), **({"network_files": files} if files else {})}


PLANT_FIELDS: tuple[str, ...] = ("network", "transformer_kw", "n_stations", "p_max", "P_ref")
"""The plant fields a model.json names beside its plant fingerprint (transformer_kw: the caltech network's)."""


def plant_entry(config: Any) -> tuple[str, dict[str, Any]]:
    """The plant fingerprint of `config` (as metrics.csv and the `plants` of run.json key it) and its
    `plant_record`."""
    record = plant_record(config)
    return fingerprint({"plant": record}), record


def plant_fields(config: Any) -> tuple[str, dict[str, Any]]:
    """The plant fingerprint of `config` (`plant_entry`) and its PLANT_FIELDS."""
    key, record = plant_entry(config)
    return key, {name: record[name] for name in PLANT_FIELDS}


def split_plants(rows: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows that carry their plant record under `plant` (beside `plant_fingerprint`) -> the rows without it, and
    plant fingerprint -> record (the `plants` of tune.json / scale.json); a row without a plant is kept as is."""
    kept, plants = [], {}
    for row in rows:
        row = dict(row)
        record = row.pop("plant", None)
        if record is not None:
            plants[row["plant_fingerprint"]] = record
        kept.append(row)
    return kept, dict(sorted(plants.items()))


def episode_set(specs: Iterable[str], seeds: Sequence[int]) -> set[str]:
    """The names of the episodes that `specs` x `seeds` draw (`pev_env.scenarios.episode_names`: a day is the same
    day under every scenario name); a scenario this version does not know adds none."""
    from pev_env.scenarios import episode_names

    found: set[str] = set()
    for spec in specs:
        with contextlib.suppress(ValueError):
            found.update(episode_names(spec, list(seeds)))
    return found
