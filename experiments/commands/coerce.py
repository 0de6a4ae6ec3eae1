"""The one coercer: values from config files (typed) or `--set` (strings) -> the declared field types.

`build(cls, key, values)` turns a mapping into the frozen dataclass `cls`, coercing every value once into
its field type (nested dataclasses such as `MPCSettings` and `EnvConfig` included); errors name the key,
the value and what is allowed. Floats must be finite. A field whose metadata holds `coerce` (e.g. the seeds)
is parsed by that function instead.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

log = logging.getLogger("experiments")

C = TypeVar("C")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
MAX_SEEDS = 100_000
"""Most seeds one run may list (checked before the ranges are expanded)."""
MAX_SEED = 2**32 - 1
"""Largest seed (numpy's seed range)."""
_SEED_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def unique(key: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """`values` without repeats (first occurrence kept); a note names the removed duplicates."""
    kept = tuple(dict.fromkeys(values))
    if len(kept) < len(values):
        seen: set[Any] = set()
        dropped = {str(v) for v in values if v in seen or seen.add(v)}
        log.warning("%s: duplicate %s removed", key, ", ".join(sorted(dropped)))
    return kept


def parse_seeds(key: str, value: Any) -> tuple[int, ...]:
    """Seeds from an int, a list, or a string like '0-4,10,12-13' (inclusive ranges); duplicates removed.

    At most MAX_SEEDS seeds, each <= MAX_SEED, checked before any range is expanded.
    """
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, (list, tuple)) else [value])
    bounds: list[tuple[int, int]] = []
    for item in items:
        match = _SEED_ITEM.match(str(item)) if not isinstance(item, (bool, float)) else None
        lo, hi = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (0, -1)
        if match is None or hi < lo:
            raise ValueError(f"{key} = {value!r}: must be integers >= 0 or inclusive ranges like '0-4,10'")
        if hi > MAX_SEED:
            raise ValueError(f"{key} = {value!r}: seeds must be <= {MAX_SEED}")
        bounds.append((lo, hi))
    if sum(hi - lo + 1 for lo, hi in bounds) > MAX_SEEDS:
        raise ValueError(f"{key} = {value!r}: at most {MAX_SEEDS} seeds per run")
    return unique(key, tuple(s for lo, hi in bounds for s in range(lo, hi + 1)))


def _nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with the dotted names `field.name` turned into items of the mapping of `field` (merged into it,
    later items winning): `{"policy": {"horizon": 6}, "policy.max_horizon": 96}` -> one mapping for policy."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        head, dot, rest = str(name).partition(".")
        value = {rest: value} if dot else value
        base = out.get(head)
        out[head] = {**base, **value} if isinstance(base, Mapping) and isinstance(value, Mapping) else value
    return out


def field_values(cls: type, key: str, values: Any) -> dict[str, Any]:
    """`values` (field -> value of the dataclass `cls`; `field.name` sets one field of a nested dataclass)
    coerced to the field types; an unknown field lists the valid ones, or names its new key when `cls` lists
    it in `MOVED_KEYS` (old name -> new dotted key); errors name `key`."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{key} = {values!r}: must be a mapping of {cls.__name__} field -> value")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    moved = getattr(cls, "MOVED_KEYS", {})
    for name, value in values.items():
        section = isinstance(value, Mapping) or dataclasses.is_dataclass(value)
        if name in moved and (name not in fields or not section):  # a flat key, or a section given one value
            raise ValueError(f"{key}.{name} = {value!r}: {cls.__name__} has sections; the key is now "
                             f"{key}.{moved[name]}")
    values = _nested(values)
    unknown = [name for name in values if name not in fields]
    if unknown:
        raise ValueError(f"{key}: unknown {cls.__name__} field {unknown[0]!r}; valid fields: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        parse = fields[name].metadata.get("coerce")
        out[name] = parse(f"{key}.{name}", value) if parse else coerce(f"{key}.{name}", hints[name], value)
    return out


def path_value(cls: type, key: str, path: str, value: Any) -> Any:
    """`value` coerced to the type of the dotted field `path` of the dataclass `cls` (e.g. 'policy.horizon')."""
    head, dot, rest = path.partition(".")
    tp = typing.get_type_hints(cls).get(head) if dot else None
    if dot and dataclasses.is_dataclass(tp):
        return path_value(tp, f"{key}.{head}", rest, value)
    return field_values(cls, key, {path: value})[head]


_CLASS_FIELD = re.compile(r"^[A-Z]\w*\.([\w.]+) = ")


def keyed(key: str, message: str) -> str:
    """A dataclass's validation `message` under the `key` the user wrote: 'EnvConfig.P_ref = -1: ...' under
    'compare.env' is 'compare.env.P_ref = -1: ...'; a section's own name is not repeated ('MPCSettings.objective.x'
    under 'compare.mpc.objective' is 'compare.mpc.objective.x'). Any other message is prefixed by `key`."""
    match = _CLASS_FIELD.match(message)
    if match is None:
        return f"{key}: {message}"
    path = match.group(1)
    section = key.rpartition(".")[2]
    if path.startswith(f"{section}."):
        path = path[len(section) + 1:]
    return f"{key}.{path} = {message[match.end():]}"


def construct(cls: type[C], key: str, values: Mapping[str, Any]) -> C:
    """`cls(**values)`; its own validation message is put under `key` (`keyed`)."""
    try:
        return cls(**values)
    except ValueError as exc:
        raise ValueError(keyed(key, str(exc))) from None


def build(cls: type[C], key: str, values: Any) -> C:
    """The frozen dataclass `cls` from a mapping field -> value (unset fields keep their defaults); an
    instance of `cls` is returned as it is."""
    if isinstance(values, cls):
        return values
    return construct(cls, key, field_values(cls, key, values))


def _number(key: str, tp: type, value: Any) -> int | float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if tp is int and not number.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{key} = {value!r}: must be {'an integer' if tp is int else 'a number'}") from None
    if not math.isfinite(number):
        raise ValueError(f"{key} = {value!r}: must be a finite number")
    return int(number) if tp is int else number


def _items(value: Any) -> list[Any]:
    items = value.split(",") if isinstance(value, str) else value
    items = list(items) if isinstance(items, (list, tuple)) else [items]
    return [v.strip() if isinstance(v, str) else v for v in items if v != ""]


def coerce(key: str, tp: Any, value: Any) -> Any:
    """`value` as the type `tp` (bool, int, float, str, tuples, `X | None`, dataclasses, mappings of
    name -> tuple of values)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, key, value)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return tuple(coerce(key, inner, v) for v in _items(value))
    if origin in (typing.Union, types.UnionType):  # e.g. float | None: 'none' -> None, else the other type
        (inner, *_rest) = [t for t in typing.get_args(tp) if t is not type(None)]
        optional = type(None) in typing.get_args(tp)
        if optional and (value is None or str(value).lower() == "none"):
            return None
        try:
            return coerce(key, inner, value)
        except ValueError as error:
            raise ValueError(f"{error} or None" if optional else str(error)) from None
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key} = {value!r}: must be a mapping of name -> value")
        inner = typing.get_args(tp)[1]
        return {k: coerce(f"{key}.{k}", inner, v) for k, v in _dotted(value, inner).items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
        raise ValueError(f"{key} = {value!r}: must be a boolean (true/false)")
    if tp in (int, float):
        return _number(key, tp, value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{key} = {value!r}: must be a string")
        return str(value)
    return value


def _dotted(mapping: Mapping[str, Any], inner: Any) -> dict[str, Any]:
    """`mapping` with nested sections written as dotted keys ({coordination: {method: x}} -> {coordination.method:
    x}) when its values are not mappings themselves, as a tune grid's `section.field` keys."""
    if typing.get_origin(inner) is Mapping:
        return {str(k): v for k, v in mapping.items()}
    flat: dict[str, Any] = {}
    for k, v in mapping.items():
        if isinstance(v, Mapping):
            flat.update({f"{k}.{name}": item for name, item in _dotted(v, inner).items()})
        else:
            flat[str(k)] = v
    return flat
