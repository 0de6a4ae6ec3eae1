"""Atomic result files: every write goes to a temporary file in the same directory, then `os.replace`.

`ResultsTable` is the tidy metrics.csv of a run: rewritten atomically after every finished row, so an
interrupted run keeps its completed rows and `--resume` skips their keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pev_env.scenario import atomic_path

__all__ = ["KEY_COLUMNS", "ResultsTable", "atomic_path", "save_figure", "write_csv", "write_text"]

KEY_COLUMNS: tuple[str, ...] = ("controller", "scenario", "seed")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a DataFrame (no index) to `path` atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 150) -> None:
    """Save a matplotlib figure atomically (format from the suffix of `path`)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")


class ResultsTable:
    """metrics.csv of one run: rows keyed by (controller, scenario, seed)."""

    def __init__(self, path: str | os.PathLike[str], resume: bool = False, columns: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self._columns = list(columns)
        self._rows: list[dict[str, Any]] = []
        if resume and self.path.exists() and self.path.stat().st_size > 0:
            frame = pd.read_csv(self.path)
            missing = [c for c in KEY_COLUMNS if c not in frame.columns]
            if missing:
                raise ValueError(f"{self.path}: cannot resume, missing key columns {missing}")
            self._rows = frame.to_dict("records")

    def done(self) -> set[tuple[str, str, int]]:
        """Keys of the rows already recorded."""
        return {(str(r["controller"]), str(r["scenario"]), int(r["seed"])) for r in self._rows}

    def add(self, row: Mapping[str, Any]) -> None:
        """Append `row` and rewrite the file atomically."""
        missing = [c for c in KEY_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"result row: missing key columns {missing}; got {sorted(row)}")
        self._rows.append(dict(row))
        write_csv(self.path, self.frame())

    def frame(self) -> pd.DataFrame:
        """All rows, key columns first, then `columns` in order, then any others."""
        frame = pd.DataFrame(self._rows)
        if frame.empty:
            return pd.DataFrame(columns=[*KEY_COLUMNS, *self._columns])
        order = list(dict.fromkeys([*KEY_COLUMNS, *self._columns, *frame.columns]))
        return frame.reindex(columns=[c for c in order if c in frame.columns])
