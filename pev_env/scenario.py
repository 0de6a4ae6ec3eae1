"""`Scenario`: the validated, immutable list of PEV charging sessions of one episode."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pev_env.arrays import real_array
from pev_env.files import atomic_path
from pev_env.limits import MAX_CAPACITY_KWH, MAX_STATIONS, MAX_STEPS

if TYPE_CHECKING:  # pragma: no cover
    import datetime as _dt

CSV_COLUMNS: tuple[str, ...] = (
    "arrival_step",
    "departure_step",
    "soc_init_kwh",
    "soc_target_kwh",
    "capacity_kwh",
    "station",
)
_ARRAY_FIELDS: tuple[str, ...] = ("arrival", "departure", "soc_init", "soc_target", "capacity", "station")
_INT_FIELDS = ("arrival", "departure", "station")
_BOUND_FIELDS = ("p_min", "p_max")


class ScenarioFieldError(ValueError):
    """A refused Scenario field: `field`, the PEV `index` (None: the whole field), `value` and what is `allowed`."""

    def __init__(self, field: str, index: int | None, value: Any, allowed: str) -> None:
        where = f"Scenario.{field}" if index is None else f"Scenario.{field}[{index}]"
        super().__init__(f"{where} = {value!r}: {allowed}")
        self.field, self.index, self.value, self.allowed = field, index, value, allowed


def _fail(field: str, index: int | None, value: Any, allowed: str) -> ScenarioFieldError:
    return ScenarioFieldError(field, index, value, allowed)


def _first_bad(mask: np.ndarray) -> int | None:
    bad = np.flatnonzero(mask)
    return int(bad[0]) if bad.size else None


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is None and b is None or a is not None and b is not None and np.array_equal(a, b)


def _as_int_array(field: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu" or arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        i = _first_bad(~np.isfinite(arr) | (arr != np.round(arr)))
        if i is None:
            return arr.astype(np.int64)
        raise _fail(field, i, arr[i].item(), "must be a finite integer (steps / station index)")
    raise _fail(field, None, arr.dtype.name, "must be an integer array")


def _as_float_array(field: str, values: Any, unit: str = "kWh") -> np.ndarray:
    try:
        arr = real_array(f"Scenario.{field}", values)
    except TypeError as exc:
        raise _fail(field, None, values, f"must be real numbers ({unit})") from exc
    i = _first_bad(~np.isfinite(arr.reshape(-1)) | (arr.reshape(-1) < 0))
    if i is not None:
        raise _fail(field, i, arr.reshape(-1)[i].item(), f"must be finite and >= 0 {unit}")
    return arr


@dataclass(frozen=True, eq=False)
class Scenario:
    """PEV sessions of one episode; all arrays have length M (one entry per PEV).

    Arrays are read-only after construction; `Scenario` is immutable and validated.
    """

    arrival: np.ndarray
    """int steps: the PEV is present from the start of this step (0 <= arrival < departure)."""
    departure: np.ndarray
    """int steps, exclusive: the PEV leaves before step `departure` is applied (<= n_steps)."""
    soc_init: np.ndarray
    """kWh: state of charge on arrival (0 <= soc_init <= capacity)."""
    soc_target: np.ndarray
    """kWh: the PEV's target state of charge (0 <= soc_target <= capacity)."""
    capacity: np.ndarray
    """kWh: battery capacity (> 0)."""
    station: np.ndarray
    """int: preferred station index in [0, n_stations), or -1 = first free station."""
    n_stations: int
    """number of charging stations (>= 1)."""
    n_steps: int
    """episode length in steps (>= 1)."""
    name: str = "custom"
    """scenario label (for tables and plots)."""
    p_min: Any = None
    """kW per station (scalar or (n_stations,)), stored as (n_stations,); None: the plant config decides."""
    p_max: Any = None
    """kW per station (the stations' ratings), as `p_min`; None: the plant config decides."""
    sampling_time: float | None = None
    """minutes per step of the sessions' grid; None: the plant config decides."""
    station_ids: tuple[str, ...] | None = None
    """(n_stations,) the stations' ids in the data (ACN sessions), which place them on a site network
    (``pev_env.network``); None: station i is the network's i-th station."""

    def __post_init__(self) -> None:
        for field, limit in (("n_stations", MAX_STATIONS), ("n_steps", MAX_STEPS)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= limit:
                raise _fail(field, None, value, f"must be an integer in [1, {limit}]")
            object.__setattr__(self, field, int(value))
        if not isinstance(self.name, str):
            raise _fail("name", None, self.name, "must be a str")
        arrays = {
            f: (_as_int_array if f in _INT_FIELDS else _as_float_array)(f, getattr(self, f))
            for f in _ARRAY_FIELDS
        }
        m = arrays["arrival"].shape
        for f, arr in arrays.items():
            if arr.ndim != 1 or arr.shape != m:
                raise _fail(f, None, f"shape {arr.shape}", f"must be 1-D with the length of arrival {m}")
        self._check_ranges(arrays)
        arrays.update(self._station_bounds())
        for f, arr in arrays.items():
            arr = arr.copy()
            arr.flags.writeable = False
            object.__setattr__(self, f, arr)
        if self.station_ids is not None:
            ids = tuple(str(i) for i in self.station_ids)
            if len(ids) != self.n_stations or len(set(ids)) != len(ids):
                raise _fail("station_ids", None, f"{len(ids)} ids", f"must be {self.n_stations} distinct ids "
                            "(one per station) or None")
            object.__setattr__(self, "station_ids", ids)
        if self.sampling_time is not None:
            ok = isinstance(self.sampling_time, (int, float, np.number)) and not isinstance(self.sampling_time, bool)
            if not (ok and np.isfinite(self.sampling_time) and self.sampling_time > 0):
                raise _fail("sampling_time", None, self.sampling_time, "must be None or > 0 minutes")
            object.__setattr__(self, "sampling_time", float(self.sampling_time))

    def _station_bounds(self) -> dict[str, np.ndarray]:
        """p_min / p_max given as a scalar or per station -> (n_stations,) arrays (None stays None)."""
        out = {}
        for f in _BOUND_FIELDS:
            value = getattr(self, f)
            if value is None:
                continue
            arr = _as_float_array(f, value, "kW")
            if arr.ndim > 1 or arr.size not in (1, self.n_stations):
                raise _fail(f, None, f"shape {arr.shape}", f"must be a scalar or one value per station ({self.n_stations})")
            out[f] = np.broadcast_to(arr.reshape(-1), (self.n_stations,))
        if "p_max" in out:
            low = out.get("p_min", np.zeros(self.n_stations))
            i = _first_bad((out["p_max"] <= 0) | (out["p_max"] < low))
            if i is not None:
                raise _fail("p_max", i, out["p_max"][i].item(), f"must be > 0 kW and >= p_min[{i}] = {low[i]}")
        return out

    def _check_ranges(self, a: dict[str, np.ndarray]) -> None:
        arr, dep, cap = a["arrival"], a["departure"], a["capacity"]
        checks = (
            ("arrival", arr < 0, lambda i: f"must be >= 0 (and < departure[{i}] = {dep[i]})"),
            (
                "departure",
                (dep <= arr) | (dep > self.n_steps),
                lambda i: f"must be > arrival[{i}] = {arr[i]} and <= n_steps = {self.n_steps}",
            ),
            ("capacity", (cap <= 0) | (cap > MAX_CAPACITY_KWH), lambda i: f"must be > 0 and <= {MAX_CAPACITY_KWH} kWh"),
            ("soc_init", a["soc_init"] > cap, lambda i: f"must be <= capacity[{i}] = {cap[i]} kWh"),
            ("soc_target", a["soc_target"] > cap, lambda i: f"must be <= capacity[{i}] = {cap[i]} kWh"),
            (
                "station",
                (a["station"] < -1) | (a["station"] >= self.n_stations),
                lambda i: f"must be -1 (first free) or in [0, {self.n_stations})",
            ),
        )
        for field, bad, allowed in checks:
            i = _first_bad(bad)
            if i is not None:
                raise _fail(field, i, a[field][i].item(), allowed(i))

    # ----------------------------------------------------------------- properties
    @property
    def n_pevs(self) -> int:
        """Number of PEVs M."""
        return int(self.arrival.shape[0])

    @property
    def energy_requested(self) -> np.ndarray:
        """kWh per PEV: (soc_target - soc_init)+."""
        return np.maximum(self.soc_target - self.soc_init, 0.0)

    @property
    def duration(self) -> np.ndarray:
        """Steps per PEV between arrival and departure."""
        return self.departure - self.arrival

    def equals(self, other: object) -> bool:
        """True when `other` is a Scenario with identical scalars and arrays."""
        if not isinstance(other, Scenario):
            return False
        scalars = ("n_stations", "n_steps", "name", "sampling_time", "station_ids")
        same_scalars = all(getattr(self, f) == getattr(other, f) for f in scalars)
        return same_scalars and all(_same(getattr(self, f), getattr(other, f)) for f in _ARRAY_FIELDS + _BOUND_FIELDS)

    def __eq__(self, other: object) -> bool:
        return self.equals(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays: not hashable

    def __repr__(self) -> str:
        return f"Scenario(name={self.name!r}, n_pevs={self.n_pevs}, n_stations={self.n_stations}, n_steps={self.n_steps})"

    # ---------------------------------------------------------------------- I/O
    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the sessions as CSV (columns `CSV_COLUMNS`), atomically; return the path.

        Station bounds and sampling time are not written (plant constants: `from_csv(..., **fixed)`).
        """
        import pandas as pd

        frame = pd.DataFrame(
            {col: getattr(self, f) for col, f in zip(CSV_COLUMNS, _ARRAY_FIELDS, strict=True)}
        )
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.17g")
        return Path(path)

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike[str], n_stations: int, n_steps: int, name: str | None = None, **fixed: Any
    ) -> Scenario:
        """Read sessions written by `to_csv` (exactly the columns `CSV_COLUMNS`, any order).

        `fixed`: the optional fields `p_min`, `p_max`, `sampling_time`.
        """
        return csv_scenario(path, read_sessions_csv(path), n_stations=n_stations, n_steps=n_steps,
                            name=name or Path(path).stem, **fixed)

    @classmethod
    def from_acn(
        cls,
        path: str | os.PathLike[str] | None = None,
        day: str | _dt.date | None = None,
        sampling_time: float = 5.0,
        **kwargs: Any,
    ) -> Scenario:
        """One local day of real ACN-Data sessions (`pev_env.acn.acn_day_fields`: arguments and rules).

        `path=None` reads the packaged Caltech week; `day=None` takes the first day in the file.
        Every station id of the file is an agent, with its rating inferred from the data.
        """
        from pev_env.acn import acn_day_fields

        return cls(**acn_day_fields(path, day=day, sampling_time=sampling_time, **kwargs))


def read_sessions_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The session arrays of a scenario CSV (`CSV_COLUMNS`, any order), keyed by Scenario field."""
    import pandas as pd

    from pev_env.csv_read import read_csv_strict

    frame = read_csv_strict(path, f"Scenario CSV {os.fspath(path)!r}")
    columns = [str(c).strip() for c in frame.columns]
    if sorted(columns) != sorted(CSV_COLUMNS):
        unknown = sorted(set(columns) - set(CSV_COLUMNS))
        missing = [c for c in CSV_COLUMNS if c not in columns]
        raise ValueError(
            f"Scenario CSV {os.fspath(path)!r}: unknown columns {unknown}, missing columns {missing}; "
            f"expected exactly {list(CSV_COLUMNS)}"
        )
    frame.columns = columns
    for col in CSV_COLUMNS:
        values = pd.to_numeric(frame[col], errors="coerce").astype(float)
        bad = np.flatnonzero(~np.isfinite(values.to_numpy()))
        if bad.size:
            raise ValueError(f"Scenario CSV {os.fspath(path)!r}: line {bad[0] + 2}: {col} = "
                             f"{str(frame[col].iloc[bad[0]])!r}: must be a finite number")
    return {f: frame[col].to_numpy() for col, f in zip(CSV_COLUMNS, _ARRAY_FIELDS, strict=True)}


def csv_scenario(path: str | os.PathLike[str], fields: dict[str, np.ndarray], **scalars: Any) -> Scenario:
    """`Scenario(**fields, **scalars)` of the sessions `read_sessions_csv(path)` returned; a refused session value is
    named by its file line and column (row i of the file is PEV i), not by the field and PEV index."""
    try:
        return Scenario(**fields, **scalars)
    except ScenarioFieldError as exc:
        if exc.index is None or exc.field not in _ARRAY_FIELDS:
            raise
        column = dict(zip(_ARRAY_FIELDS, CSV_COLUMNS, strict=True))
        allowed = re.sub(r"\b(\w+)\[\d+\]", lambda m: f"{column.get(m[1], m[1])} of the row", exc.allowed)
        raise ValueError(f"Scenario CSV {os.fspath(path)!r}: line {exc.index + 2}: {column[exc.field]} = "
                         f"{exc.value!r}: {allowed}") from None
