"""Atomic result files: every write goes to a temporary file in the same directory, then `os.replace`.

`ResultsTable` is the tidy metrics.csv of a run: written atomically (header and earlier rows) with its first
new row, then each finished row is appended as one line and fsync'ed, so an interrupted run keeps its
completed rows and a row costs the same at 50,000 rows as at 1 (benchmarks/results_append.py). `read_rows`
reads such a file back for `--resume`: a header that repeats, lacks or adds a column is refused; only
complete, well-formed rows are kept (every cell present and parseable, valid fingerprints last): a truncated
or corrupt row is reported and left out, so it is run again.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.errors import UsageError
from experiments.outputs.outdir import record
from experiments.outputs.provenance import FINGERPRINT_LENGTH
from pev_env.files import atomic_path

__all__ = ["KEY_COLUMNS", "PROVENANCE_COLUMNS", "ResultsTable", "read_rows", "recorded_atomic_path", "save_figure",
           "write_csv", "write_text"]

KEY_COLUMNS: tuple[str, ...] = ("controller", "scenario", "seed")
PROVENANCE_COLUMNS: tuple[str, ...] = ("package_version", "plant_fingerprint", "settings_fingerprint")
"""The last columns of every row: the version of this package, the fingerprint of the plant that ran and the
fingerprint of the row's settings (last, so that a row cut short always loses or shortens it)."""
FINGERPRINT_COLUMNS: frozenset[str] = frozenset({"plant_fingerprint", "settings_fingerprint"})
NULLABLE: frozenset[str] = frozenset({"coordination_iterations_mean"})
"""Numeric columns that may be empty (NaN) in a complete row."""
_INT = re.compile(r"-?\d+")
_FINGERPRINT = re.compile(rf"[0-9a-f]{{{FINGERPRINT_LENGTH}}}")


@contextlib.contextmanager
def recorded_atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """`pev_env.files.atomic_path`, the file first noted in the manifest of the claimed output folder
    (`experiments.outputs.outdir.record`: what --overwrite may remove)."""
    record(path)
    with atomic_path(path) as tmp:
        yield tmp


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically."""
    with recorded_atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    """Write a DataFrame (no index) to `path` atomically."""
    with recorded_atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 150) -> None:
    """Save a matplotlib figure atomically (format from the suffix of `path`)."""
    with recorded_atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")


def _cell(column: str, text: str) -> Any:
    """One cell of a metrics row as its value; ValueError naming the column if it is missing or corrupt."""
    if column in ("controller", "scenario", "package_version"):
        if not text or "\ufffd" in text:
            raise ValueError(f"{column} {text!r}")
        return text
    if column == "seed":
        if not text.isdigit():
            raise ValueError(f"seed {text!r}")
        return int(text)
    if column in FINGERPRINT_COLUMNS:
        if not _FINGERPRINT.fullmatch(text):
            raise ValueError(f"{column} {text!r}")
        return text
    if not text and column in NULLABLE:
        return math.nan
    try:
        value = int(text) if _INT.fullmatch(text) else float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{column} {text!r}")
    return value


def read_rows(path: Path, columns: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The complete rows of a metrics.csv and one problem line per row left out (line number and reason).

    UsageError (not a table this version can resume) when the file cannot be read, or its header repeats a
    column, lacks one of the key columns, PROVENANCE_COLUMNS and `columns`, or has a column not among them.
    """
    def refuse(problem: str) -> UsageError:
        return UsageError(f"{path}: cannot resume, {problem}; use --overwrite or another --out")

    try:
        text = path.read_bytes().decode("utf-8", errors="replace").replace("\0", "\ufffd")
    except OSError as exc:
        raise refuse(f"it cannot be read ({exc.strerror or exc})") from None
    lines = list(csv.reader(text.splitlines()))
    if not lines:
        return [], []
    header, *body = lines
    expected = list(dict.fromkeys([*KEY_COLUMNS, *PROVENANCE_COLUMNS, *columns]))
    repeated = sorted({c for c in header if header.count(c) > 1})
    missing = [c for c in expected if c not in header]
    unknown = [c for c in header if c not in expected]
    if repeated:
        raise refuse(f"the header repeats {', '.join(repeated)}")
    if missing:
        raise refuse(f"the header lacks {', '.join(missing)} (written by another version?)")
    if unknown:
        raise refuse(f"the header has columns this version does not write ({', '.join(unknown)})")
    rows, problems, seen = [], [], set()
    for number, cells in enumerate(body, start=2):
        if len(cells) != len(header):
            problems.append(f"line {number}: {len(cells)} of {len(header)} cells")
            continue
        try:
            row = {column: _cell(column, cell) for column, cell in zip(header, cells)}
        except ValueError as exc:
            problems.append(f"line {number}: bad cell {exc}")
            continue
        key = tuple(row[c] for c in KEY_COLUMNS)
        if key in seen:
            problems.append(f"line {number}: repeats {'/'.join(map(str, key))}")
            continue
        seen.add(key)
        rows.append(row)
    return rows, problems


def _text(value: Any) -> str:
    """A cell as pandas writes it: NaN and None empty, floats in full precision."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


class ResultsTable:
    """metrics.csv of one run: rows keyed by (controller, scenario, seed), provenance columns last.

    The first `add` writes the file atomically (header and the rows given at construction, e.g. those kept by
    a resume); every later `add` appends one line and fsyncs it.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str] = (),
                 rows: Sequence[Mapping[str, Any]] = ()) -> None:
        self.path = Path(path)
        self._columns = list(columns)
        self._rows = [dict(r) for r in rows]
        self._header: list[str] | None = None

    def done(self) -> set[tuple[str, str, int]]:
        """Keys of the rows recorded."""
        return {(str(r["controller"]), str(r["scenario"]), int(r["seed"])) for r in self._rows}

    def add(self, row: Mapping[str, Any]) -> None:
        """Record `row`: the first one rewrites the file (`save`), later ones are appended and fsync'ed."""
        missing = [c for c in KEY_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"result row: missing key columns {missing}; got {sorted(row)}")
        if self._header is None:
            self._rows.append(dict(row))
            try:
                self.save()
            except BaseException:
                self._rows.pop()  # not on disk
                raise
            return
        unknown = [c for c in row if c not in self._header]
        if unknown:
            raise ValueError(f"result row: columns {unknown} are not in the header of {self.path}")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([_text(row.get(c)) for c in self._header])
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        self._rows.append(dict(row))

    def save(self) -> None:
        """Rewrite the file atomically (fsync'ed before it replaces the old one); later rows are appended."""
        frame = self.frame()
        self._header = list(frame.columns) if self._rows else None  # no rows: the next add writes the header
        with recorded_atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, lineterminator="\n")
            handle.flush()
            os.fsync(handle.fileno())

    def frame(self) -> pd.DataFrame:
        """All rows: key columns first, then `columns` in order, then any others, the provenance last."""
        frame = pd.DataFrame(self._rows)
        if frame.empty:
            return pd.DataFrame(columns=[*KEY_COLUMNS, *self._columns])
        order = list(dict.fromkeys([*KEY_COLUMNS, *self._columns, *frame.columns]))
        order = [c for c in order if c not in PROVENANCE_COLUMNS] + list(PROVENANCE_COLUMNS)
        return frame.reindex(columns=[c for c in order if c in frame.columns])
