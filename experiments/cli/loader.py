"""Build a run configuration: defaults < config file < `--set` < the dedicated options, coerced once.

A dotted key (`mpc.horizon`, `env.P_ref`, `grid.horizon`, in the file or the overrides) sets one item of
a nested field. The base plant is `env_file` (a flat YAML/TOML table of EnvConfig fields) with `env` on top.
A file with a `[<command>]` section may hold other commands' sections beside it, nothing else.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from experiments.commands.coerce import field_values, keyed
from experiments.commands.config import CONFIGS
from pev_env.config import EnvConfig, read_mapping_file

C = TypeVar("C")


def _nested(tp: Any) -> bool:
    """Whether a field of type `tp` takes dotted keys (a dataclass or a mapping)."""
    return dataclasses.is_dataclass(tp) or typing.get_origin(tp) is Mapping


def _merge(section: str, data: dict[str, Any], items: Mapping[str, Any], hints: Mapping[str, Any]) -> None:
    """Update `data` with `items`; a dotted key `field.name` sets one item of the nested field `field`. Within
    `items` (one source) a table and dotted keys of the same field are merged, in any order: in TOML the
    `[compare]` keys (`"env.xi" = 0.05`) come before the `[compare.env]` table."""
    tables: set[str] = set()
    for key, value in items.items():
        head, dot, name = key.partition(".")
        if not dot:
            same_source = key in tables and isinstance(value, Mapping) and isinstance(data.get(key), Mapping)
            data[key] = {**data[key], **value} if same_source else value
            tables.add(key)
            continue
        tables.add(head)
        if not _nested(hints.get(head)) or not name:
            nested = [k for k, tp in hints.items() if _nested(tp)]
            raise ValueError(f"{section}: unknown key {key!r}; dotted keys set one item of: "
                             f"{', '.join(nested) or '(none in this section)'}")
        base = data.get(head, {})
        if not isinstance(base, Mapping):
            raise ValueError(f"{section}.{head} = {base!r}: must be a mapping of name -> value")
        data[head] = {**base, name: value}


def _leaves(prefix: str, value: Any) -> list[str]:
    """The dotted paths of the values in `value` under `prefix` (`{policy: {horizon: 6}}` and `policy.horizon: 6`
    are both 'policy.horizon')."""
    if not isinstance(value, Mapping):
        return [prefix]
    return [leaf for key, item in value.items() for leaf in _leaves(f"{prefix}.{key}", item)]


def _once(section: str, file: str | Path, keys: Mapping[str, Any]) -> dict[str, Any]:
    """`keys` of a config file's section; a value given twice, once in a nested table and once as a dotted key
    (`mpc: {policy: {horizon: 12}}` and `mpc.policy.horizon: 24`), is refused: one of the two would be dropped."""
    seen: set[str] = set()
    for leaf in (leaf for key, value in keys.items() for leaf in _leaves(f"{section}.{key}", value)):
        if leaf in seen:
            raise ValueError(f"config file {file}: {leaf} is given twice (in a table and as a dotted key); allowed: "
                             "once")
        seen.add(leaf)
    return dict(keys)


def file_section(section: str, file: str | Path) -> dict[str, Any]:
    """The keys of `section` in a config file: its `[section]` table, or the whole file when it has none
    (other commands' sections are left out either way); a value given twice is refused (`_once`)."""
    raw = read_mapping_file(file, "config file")
    others = {name for name in CONFIGS if name != section and isinstance(raw.get(name), Mapping)}
    if not isinstance(raw.get(section), Mapping):
        flat = {k: v for k, v in raw.items() if k not in others}
        if others and not flat:
            raise ValueError(f"config file {file}: has no [{section}] section (it has {', '.join(sorted(others))}), so "
                             f"nothing in it applies to {section}; allowed: a [{section}] section or flat keys")
        return _once(section, file, flat)
    stray = [k for k in raw if k != section and k not in others]
    if stray:
        raise ValueError(f"config file {file}: top-level key {stray[0]!r} is outside the [{section}] section, which "
                         f"would ignore it; allowed beside [{section}]: other commands' sections")
    return _once(section, file, raw[section])


def base_env_config(section: str, env: Any, env_file: str) -> EnvConfig:
    """The base EnvConfig: defaults < the fields of `env_file` (empty: none) < `env` (field -> value). Both
    are validated together; errors name `<section>.env_file` and / or `<section>.env`."""
    if isinstance(env, EnvConfig) and not env_file:
        return env
    key, from_file = f"{section}.env", {}
    if env_file:
        try:
            data = read_mapping_file(env_file, "config file")
        except ValueError as exc:
            raise ValueError(f"{section}.env_file = {env_file!r}: {exc}") from None
        from_file = field_values(EnvConfig, f"{section}.env_file {env_file}", data)
        key = f"{section}.env_file {env_file} + {key}"
    values = {**from_file, **field_values(EnvConfig, f"{section}.env", env)}
    try:  # with_overrides: every field named counts as set by the user (EnvConfig.is_set), even at its default
        return EnvConfig().with_overrides(values)
    except ValueError as exc:
        raise ValueError(keyed(key, str(exc))) from None


def load_config(cls: type[C], file: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> C:
    """`cls` (a class of `experiments.commands.config.CONFIGS`) from its defaults, then the file, then `overrides`."""
    section = cls.section  # type: ignore[attr-defined]
    hints = typing.get_type_hints(cls)
    data: dict[str, Any] = {}
    if file is not None:
        _merge(section, data, file_section(section, file), hints)
    _merge(section, data, {k: v for k, v in (overrides or {}).items() if v is not None}, hints)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in valid]
    if unknown:
        raise ValueError(f"{section}: unknown key {unknown[0]!r}; valid keys: {', '.join(valid)}")
    if "env" in valid:
        env_file = str(data.get("env_file") or "")
        data["env"] = base_env_config(section, data.get("env", {}), env_file)
    return cls(**field_values(cls, section, data))


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """`["key=value", ...]` (the --set option) -> dict; a missing '=' or a key given twice is an error naming it
    (the last would win silently)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise ValueError(f"--set {item!r}: must be KEY=VALUE")
        if key in out:
            raise ValueError(f"--set {key!r} is given twice ({out[key]!r} and {value!r}): give each key once")
        out[key] = value
    return out
