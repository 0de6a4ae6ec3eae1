"""Reading a file whose top level is a mapping of keys (YAML, TOML or JSON): config files, network files.

A key given twice in one mapping is an error in every format (YAML and JSON parsers otherwise keep the last
value silently; TOML refuses it itself), so an edited file never runs with a limit or setting that its
reader did not see.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAPPING_SUFFIXES = (".yaml", ".yml", ".toml")
"""The suffixes of config files."""


class DuplicateKeyError(ValueError):
    """A JSON object that gives a key twice."""


def _unique_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _yaml_loader() -> type:
    """yaml.SafeLoader that refuses a key given twice in one mapping (merge keys '<<' may be overridden)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first.setdefault(key, key_node.start_mark.line)
                except TypeError:       # an unhashable key: the base class reports it
                    continue
                if line != key_node.start_mark.line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {line + 1})", key_node.start_mark)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def read_mapping_file(path: str | Path, label: str = "config file",
                      suffixes: tuple[str, ...] = MAPPING_SUFFIXES) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml), TOML (.toml) or JSON (.json) file, of the allowed `suffixes`, whose top
    level is a mapping (empty file: {}).

    Errors (bad suffix, unreadable file, invalid syntax, a key given twice, non-mapping top level) raise ValueError
    starting with ``f"{label} {path}: "``.
    """
    import yaml

    p = Path(path).expanduser()
    kind = p.suffix.lower()
    if kind not in suffixes:
        raise ValueError(f"{label} {p}: suffix {p.suffix!r} not allowed; allowed: {', '.join(suffixes)}")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{label} {p}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{label} {p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:
        data = (tomllib.loads(text) if kind == ".toml" else
                json.loads(text, object_pairs_hook=_unique_json_object) if kind == ".json" else
                yaml.load(text, Loader=_yaml_loader()))  # noqa: S506 (a SafeLoader)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, DuplicateKeyError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)    # YAML: where the parser stopped (0-based)
        if mark is not None:
            first = f"line {mark.line + 1}, column {mark.column + 1}: {getattr(exc, 'problem', None) or first}"
        raise ValueError(f"{label} {p}: not valid {p.suffix[1:].upper()}: {first}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{label} {p}: top level must be a mapping of keys, got {type(data).__name__}")
    return dict(data)
