"""Reading a file whose top level is a mapping of keys (YAML, TOML or JSON): config files, network files."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAPPING_SUFFIXES = (".yaml", ".yml", ".toml")
"""The suffixes of config files."""


def read_mapping_file(path: str | Path, label: str = "config file",
                      suffixes: tuple[str, ...] = MAPPING_SUFFIXES) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml), TOML (.toml) or JSON (.json) file, of the allowed `suffixes`, whose top
    level is a mapping (empty file: {}).

    Errors (bad suffix, unreadable file, invalid syntax, non-mapping top level) raise ValueError
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
        data = tomllib.loads(text) if kind == ".toml" else json.loads(text) if kind == ".json" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
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
