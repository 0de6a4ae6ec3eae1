"""Site networks: the shared limits on station power, from one area limit to three-phase trees.

A network is a set of constraints on the stations' grid-side powers p (N,) kW. Constraint j holds at a
step when

    load_j = | sum_i gain[j, i] p_i | <= limit[j]

with one complex gain per station and constraint, in the constraint's unit per kW:

* a current limit (A): gain = c_ij * 1000 / V_i * e^{i phi_i}, the station current I_i = 1000 p_i / V_i
  (V_i the station voltage, 208 V on the ACN sites) times its phase angle phi_i and the coefficient
  c_ij of the constraint (acnportal's `Current`: +1, -1, 1/4, ...). Phasor sums make such a
  constraint a second-order cone;
* a power limit (kW): gain = c_ij (real), the load a sum of powers.

A row whose gains all point the same way (one phase, or power) is linear: its load is
sum_i |gain[j, i]| p_i for p >= 0 (`Network.linear`). The single area limit P_ref is the one-row
linear network (`area_network`), the default.

Built in (`site_network`): `area`, `caltech` and `jpl` (the ACN sites as acnportal 0.3.3 defines them,
`acnportal/acnsim/network/sites/caltech_acn.py` and `jpl_acn.py`: Z. J. Lee et al., "ACN-Sim: An
Open-Source Simulator for Data-Driven Electric Vehicle Charging Research", IEEE SmartGridComm 2019),
`tree:B1,B2` (a synthetic feeder -> B1 transformers -> B2 panels each) and `network:PATH` (a user's
tree in YAML or JSON, `read_network_file`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from pev_env.files import file_sha256
from pev_env.mapping_file import read_mapping_file

LINE_PHASES_DEG: dict[str, float] = {"AB": 30.0, "BC": -90.0, "CA": 150.0}
"""Phase angles (degrees) of line-to-line stations on a three-phase site (acnportal's convention)."""
TREE_OVERSUBSCRIPTION = 1.1
"""`tree:B1,B2`: a transformer's limit is this times its stations' share of the feeder limit, a panel's
this times its share of its transformer's limit (oversubscribed, as real sites are)."""
SPARSE_DENSITY = 0.1
"""Products with the gains are sparse when at most this share of them is nonzero (trees; not the ACN sites)."""
SPARSE_MIN_SIZE = 10_000
"""... and the gain matrix has at least this many entries (below it dense products are faster)."""
MAX_CONSTRAINTS = 100_000
"""Largest number of constraints a network may have (rows x stations are allocated densely)."""
_LINEAR_TOL = 1e-12


class NetworkError(ValueError):
    """A network that cannot be built; the message names the field, the value and what is allowed."""


@dataclass(frozen=True, eq=False)
class Network:
    """Constraints |gain @ p| <= limit on the station powers p (N,) kW; see the module doc."""

    name: str
    """The network's spec (`area`, `caltech`, `tree:20,25`, `network:PATH`)."""
    names: tuple[str, ...]
    """(J,) constraint names."""
    gain: np.ndarray
    """(J, N) complex, the constraint's unit per kW of each station (0 where a station is not loaded)."""
    limit: np.ndarray
    """(J,) limits, in each constraint's unit (> 0)."""
    units: tuple[str, ...]
    """(J,) 'A' or 'kW'."""
    linear: np.ndarray = field(init=False, repr=False)
    """(J,) bool, derived: the row's gains all point one way (its load is sum_i |gain| p_i for p >= 0)."""
    direction: np.ndarray = field(init=False, repr=False)
    """(J,) complex unit, derived: the direction of the row's largest gain (a linear row's common one)."""

    def __post_init__(self) -> None:
        gain = np.asarray(self.gain, dtype=np.complex128)
        limit = np.asarray(self.limit, dtype=np.float64)
        if isinstance(self.units, str) or any(u not in ("A", "kW") for u in self.units):
            raise NetworkError(f"network {self.name}: units = {self.units!r}: must be a sequence of 'A' or 'kW', one "
                               "per constraint")
        if gain.ndim != 2 or limit.shape != (gain.shape[0],) or len(self.names) != gain.shape[0] \
                or len(self.units) != gain.shape[0]:
            raise NetworkError(f"network {self.name}: gain {gain.shape}, limit {limit.shape}, {len(self.names)} names "
                               f"and {len(self.units)} units must agree on the number of constraints")
        if not np.all(np.isfinite(gain)):
            raise NetworkError(f"network {self.name}: gains must be finite")
        bad = ~(np.isfinite(limit) & (limit > 0))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise NetworkError(f"network {self.name}: limit of {self.names[j]!r} = {limit[j]}: must be a finite "
                               f"number > 0 ({self.units[j]})")
        direction = _row_direction(gain)
        linear = np.all(np.abs(gain * np.conj(direction)[:, None] - np.abs(gain)) <= _LINEAR_TOL
                        * np.maximum(np.abs(gain), 1.0), axis=1)
        for name, value in (("gain", gain), ("limit", limit), ("linear", linear), ("direction", direction)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    # ---- structure --------------------------------------------------------------------------

    @property
    def n_constraints(self) -> int:
        return int(self.gain.shape[0])

    @property
    def n_stations(self) -> int:
        return int(self.gain.shape[1])

    @property
    def is_linear(self) -> bool:
        """True when every row is linear (an LP for the offline optimum)."""
        return bool(self.linear.all())

    @property
    def magnitude(self) -> np.ndarray:
        """(J, N) |gain|: the most a kW of station i can add to constraint j."""
        return np.abs(self.gain)

    @property
    def loaded(self) -> np.ndarray:
        """(J, N) bool: station i loads constraint j."""
        return self.gain != 0

    @cached_property
    def exchange_ratio(self) -> float:
        """How many kW of one station a kW of another can make room for on a row they share, bounded over
        the rows: its largest over its smallest gain magnitude, divided by the cosine of half the narrowest arc
        that holds all its gains' angles (a load inside that arc projects every gain at least that much).
        1 for the area limit and for rows that weigh their stations equally; 4 on the ACN's primary rows
        (2.40 and 1.20 A per kW, 60 degrees either side); inf when a row's gains span half a turn or more."""
        ratio = 1.0
        for j in range(self.n_constraints):
            gain = self.gain[j][self.gain[j] != 0]
            if gain.size == 0:
                continue
            magnitude = np.abs(gain)
            spread = 0.0 if self.linear[j] else _arc(np.angle(gain))
            if spread >= math.pi - _LINEAR_TOL:
                return math.inf
            ratio = max(ratio, float(magnitude.max() / magnitude.min()) / math.cos(spread / 2))
        return ratio

    @cached_property
    def tree(self) -> RowTree | None:
        """The rows as a tree of nested linear limits (`RowTree`), None when they are not one."""
        return RowTree.of(self)

    # ---- measurement ------------------------------------------------------------------------
    @cached_property
    def sparse_gain(self) -> sparse.csr_matrix:
        """gain as a CSR matrix (J, N)."""
        return sparse.csr_matrix(self.gain)

    @cached_property
    def _sparse(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix] | None:
        """(gain, conj(gain)^T) as CSR where few stations load each constraint (trees), else None."""
        if self.gain.size < SPARSE_MIN_SIZE or np.count_nonzero(self.gain) > SPARSE_DENSITY * self.gain.size:
            return None
        return self.sparse_gain, self.sparse_gain.conj().T.tocsr()

    def combine(self, p_kw: np.ndarray) -> np.ndarray:
        """gain @ p, complex: (J,) for p (N,), (J, T) for p (N, T) (a sparse product on sparse networks)."""
        p_kw = np.asarray(p_kw, dtype=np.float64)
        return self.gain @ p_kw if self._sparse is None else self._sparse[0] @ p_kw

    def weigh(self, y: np.ndarray) -> np.ndarray:
        """Re(conj(gain)^T y): what the multipliers y (J,) or (J, T) complex cost each station per kW."""
        return np.real(np.conj(self.gain).T @ y if self._sparse is None else self._sparse[1] @ y)

    def loads(self, p_kw: np.ndarray) -> np.ndarray:
        """Constraint loads |gain @ p| in their units: (J,) for p (N,), (J, T) for p (N, T)."""
        return np.abs(self.combine(p_kw))

    def overload(self, p_kw: np.ndarray) -> np.ndarray:
        """loads - limit, (J,) or (J, T) (positive where a constraint is exceeded)."""
        loads = self.loads(p_kw)
        return loads - (self.limit if loads.ndim == 1 else self.limit[:, None])

    def headroom_kw(self, loads: np.ndarray, p_max: np.ndarray) -> np.ndarray:
        """(N,) kW: for each station, the least over the constraints it loads of (limit - load) / |gain|,
        the power it alone could add before that constraint reaches its limit (exact for linear rows,
        a lower bound for cones); p_max where a station loads no constraint."""
        mag = self.magnitude
        room = np.where(mag > 0, (self.limit - loads)[:, None] / np.where(mag > 0, mag, 1.0), np.inf)
        least = room.min(axis=0, initial=np.inf)
        return np.where(np.isfinite(least), least, np.asarray(p_max, dtype=np.float64))

    def with_limits(self, limit: np.ndarray) -> Network:
        """The same constraints with other limits; the derived structure (linear rows, directions, the
        sparse gains) is kept, not recomputed (a policy widens limits at every step)."""
        out = Network.__new__(Network)
        self.tree                                             # derived once, here, for every copy to share
        out.__dict__.update(self.__dict__)
        limit = np.asarray(limit, dtype=np.float64).copy()
        bad = ~(np.isfinite(limit) & (limit > 0)) if limit.shape == self.limit.shape else None
        if bad is None or bad.any():
            raise NetworkError(f"network {self.name}: limits {limit} must be {self.n_constraints} finite numbers > 0")
        limit.setflags(write=False)
        object.__setattr__(out, "limit", limit)
        return out

    def rows(self, index: np.ndarray) -> Network:
        """The network of the constraints `index` only."""
        return Network(self.name, tuple(self.names[j] for j in index), self.gain[index], self.limit[index],
                       tuple(self.units[j] for j in index))

    def columns(self, index: np.ndarray) -> Network:
        """The same constraints over the stations `index` only (the others draw nothing)."""
        return Network(self.name, self.names, self.gain[:, index], self.limit, self.units)

    def with_rows(self, other: Network) -> Network:
        """This network's constraints followed by `other`'s (same stations)."""
        return Network(self.name, self.names + other.names, np.vstack([self.gain, other.gain]),
                       np.concatenate([self.limit, other.limit]), self.units + other.units)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (for run.json): constraints with units, limits and station counts."""
        return {"name": self.name, "constraints": [
            {"name": n, "unit": u, "limit": float(lim), "stations": int(k), "linear": bool(lin)}
            for n, u, lim, k, lin in zip(self.names, self.units, self.limit, self.loaded.sum(axis=1), self.linear)]}


@dataclass(frozen=True)
class RowTree:
    """A network whose rows nest: every row is linear, any two rows load disjoint or nested sets of stations
    (feeder -> transformers -> panels), and a station's gains on its rows are proportional across
    stations, |gain[j, i]| = factor[j] * station_gain[i] (one unit per row, such as kW, or A at one
    voltage). The model market clears such networks by elimination along the tree
    (`pev_mpc.tree_market`)."""

    parent: np.ndarray
    """(J,) the smallest row that loads every station of row j and more (or as many, and comes first);
    -1 for a root."""
    leaf: np.ndarray
    """(N,) the smallest row that loads station i (-1: none)."""
    factor: np.ndarray
    """(J,) the row's gain per unit of station gain."""
    station_gain: np.ndarray
    """(N,) |gain| of station i on its smallest row (0 where it loads none)."""
    depth: np.ndarray
    """(J,) the row's number of ancestors (0 for a root)."""

    @staticmethod
    def of(network: Network) -> RowTree | None:
        if not network.is_linear:
            return None
        S = abs(network.sparse_gain).tocsr()
        S.eliminate_zeros()
        J, N = S.shape
        size = np.diff(S.indptr)
        support = S.copy()
        support.data[:] = 1.0
        overlap = (support @ support.T).tocoo()
        j, k, shared = overlap.row, overlap.col, overlap.data
        if np.any((shared != size[j]) & (shared != size[k])):
            return None                                           # two rows overlap without nesting
        # k encloses j: it holds all of j's stations and more, or as many and comes first
        encloses = (shared == size[j]) & ((size[k] > size[j]) | ((size[k] == size[j]) & (k < j)))
        j, k = j[encloses], k[encloses]
        order = np.lexsort((-k, size[k], j))       # per row j, its smallest enclosing row first
        j, k = j[order], k[order]
        first = np.unique(j, return_index=True)[1]               # where each row's run starts (j is sorted)
        parent = np.full(J, -1)
        parent[j[first]] = k[first]
        # each station's smallest row: of its rows, the one of least size (ties: the last)
        rows_of, stations = S.nonzero()
        pick = np.lexsort((-rows_of, size[rows_of], stations))
        stations, rows_of = stations[pick], rows_of[pick]
        lead = np.unique(stations, return_index=True)[1]
        leaf = np.full(N, -1)
        leaf[stations[lead]] = rows_of[lead]
        coo = S.tocoo()
        station_gain = np.zeros(N)
        on_leaf = coo.row == leaf[coo.col]
        station_gain[coo.col[on_leaf]] = coo.data[on_leaf]
        ratio = coo.data / station_gain[coo.col]
        factor = np.zeros(J)
        factor[coo.row] = ratio
        if np.any(np.abs(ratio - factor[coo.row]) > 1e-9 * np.abs(ratio)):
            return None                                           # gains not proportional across stations
        depth, above = np.zeros(J, dtype=int), parent
        while np.any(above >= 0):
            depth += above >= 0
            above = np.where(above >= 0, parent[np.maximum(above, 0)], -1)
        return RowTree(parent, leaf, factor, station_gain, depth)


def _arc(angle: np.ndarray) -> float:
    """The narrowest arc (radians) of the circle that holds every angle of `angle`."""
    turn = np.sort(np.mod(angle, 2 * math.pi))
    gaps = np.diff(np.concatenate([turn, turn[:1] + 2 * math.pi]))
    return float(2 * math.pi - gaps.max())


def _row_direction(gain: np.ndarray) -> np.ndarray:
    """(J,) unit complex: the direction of each row's largest gain (1 for an empty row)."""
    if gain.shape[1] == 0:
        return np.ones(gain.shape[0], dtype=np.complex128)
    big = gain[np.arange(gain.shape[0]), np.argmax(np.abs(gain), axis=1)]
    return np.where(np.abs(big) > 0, big / np.where(np.abs(big) > 0, np.abs(big), 1.0), 1.0)


# ================================================================================ builders
def area_network(n_stations: int, P_ref: float) -> Network:
    """The single area limit: sum_i p_i <= P_ref (kW)."""
    return Network("area", ("area",), np.ones((1, n_stations)), np.array([float(P_ref)]), ("kW",))


@dataclass
class _Builder:
    """Collects constraints as {station id: coefficient} currents (acnportal's `Current`) and builds the
    Network for a list of station ids (the scenario's stations)."""

    name: str
    phase_deg: dict[str, float]
    rows: list[tuple[str, dict[str, float], float, str]]

    def current(self, ids: Sequence[str], coef: float = 1.0) -> dict[str, float]:
        return {i: coef for i in ids}

    def add(self, name: str, current: Mapping[str, float], limit: float, unit: str = "A") -> None:
        self.rows.append((name, dict(current), float(limit), unit))

    def build(self, stations: Sequence[str], voltage_v: float) -> Network:
        known = self.phase_deg
        missing = [s for s in stations if s not in known]
        if missing:
            raise NetworkError(f"network {self.name}: station {missing[0]!r} of the data is not in the network "
                               f"({len(missing)} missing); its stations: {sorted(known)[:8]} ... ({len(known)})")
        column = {s: i for i, s in enumerate(stations)}
        phasor = {s: np.exp(1j * np.deg2rad(phi)) for s, phi in known.items()}
        gain = np.zeros((len(self.rows), len(stations)), dtype=np.complex128)
        for j, (_, current, _, unit) in enumerate(self.rows):
            for sid, coef in current.items():
                if sid in column and coef != 0:
                    gain[j, column[sid]] += coef * (1000.0 / voltage_v * phasor[sid] if unit == "A" else 1.0)
        return Network(self.name, tuple(r[0] for r in self.rows), gain, np.array([r[2] for r in self.rows]),
                       tuple(r[3] for r in self.rows))


def _lines(ab: dict[str, float], bc: dict[str, float], ca: dict[str, float]) -> dict[str, dict[str, float]]:
    """Line currents of a delta-connected group: I_a = I_ab - I_ca, I_b = I_bc - I_ab, I_c = I_ca - I_bc."""
    return {"a": _combine((1, ab), (-1, ca)), "b": _combine((1, bc), (-1, ab)), "c": _combine((1, ca), (-1, bc))}


def _combine(*terms: tuple[float, Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for scale, current in terms:
        for sid, coef in current.items():
            out[sid] = out.get(sid, 0.0) + scale * coef
    return out


def caltech_builder(transformer_kw: float) -> _Builder:
    """acnportal 0.3.3 `caltech_acn(transformer_cap=transformer_kw)`: 54 EVSEs on lines AB / BC / CA
    (30, -90, 150 degrees), two pods of 8 EVSEs limited to 80 A, and a delta-wye transformer whose
    secondary phase currents are limited to transformer_kw * 1000 / 3 / 120 A and primary ones (with
    its 4:1 ratio) to transformer_kw * 1000 / 3 / 277 A."""
    cc_pod = ["CA-322", "CA-493", "CA-496", "CA-320", "CA-495", "CA-321", "CA-323", "CA-494"]
    av_pod = ["CA-324", "CA-325", "CA-326", "CA-327", "CA-489", "CA-490", "CA-491", "CA-492"]
    ab = [f"CA-{i}" for i in (308, 508, 303, 513, 310, 506, 316, 500, 318, 498)] + av_pod + cc_pod
    bc = [f"CA-{i}" for i in (304, 512, 305, 511, 313, 503, 311, 505, 317, 499, 148, 149, 212, 213)]
    ca = [f"CA-{i}" for i in (307, 509, 309, 507, 306, 510, 315, 501, 319, 497, 312, 504, 314, 502)]
    phases = {**dict.fromkeys(ab, 30.0), **dict.fromkeys(bc, -90.0), **dict.fromkeys(ca, 150.0)}
    b = _Builder("caltech", phases, [])
    secondary = _lines(b.current(ab), b.current(bc), b.current(ca))
    primary = {p: _combine((0.25, secondary[p]), (-0.25, secondary[q]))
               for p, q in (("a", "c"), ("b", "a"), ("c", "b"))}
    b.add("CC Pod", b.current(cc_pod), 80.0)
    b.add("AV Pod", b.current(av_pod), 80.0)
    for p in "abc":
        b.add(f"Secondary {p.upper()}", secondary[p], transformer_kw * 1000 / 3 / 120)
    for p in "abc":
        b.add(f"Primary {p.upper()}", primary[p], transformer_kw * 1000 / 3 / 277)
    return b


def jpl_builder(first_kw: float, third_fourth_kw: float) -> _Builder:
    """acnportal 0.3.3 `jpl_acn(first_transformer_cap=first_kw, third_fourth_transformer_cap=third_fourth_kw)`:
    52 EVSEs; on the first floor two sub-panels (100 A per phase) and the main panel behind a first_kw
    delta-wye transformer; the third and fourth floor panels (225 A per phase) behind a third_fourth_kw
    one. Each transformer limits its secondary phase currents to cap * 1000 / 3 / 120 A and its primary
    ones (4:1) to sqrt(3) times that."""
    groups = {  # name: (AB, BC, CA) station ids
        "sp1": (["AG-1F12", "AG-1F14"], [], ["AG-1F11", "AG-1F13"]),
        "sp2": (["AG-1F03", "AG-1F06"], ["AG-1F01", "AG-1F04"], ["AG-1F02", "AG-1F05"]),
        "main": (["AG-1F10"], ["AG-1F07", "AG-1F09"], ["AG-1F08"]),
        "third": (["AG-3F16", "AG-3F17", "AG-3F20", "AG-3F23", "AG-3F25", "AG-3F26", "AG-3F29", "AG-3F33"],
                  ["AG-3F18", "AG-3F21", "AG-3F27", "AG-3F30", "AG-3F31"],
                  ["AG-3F15", "AG-3F19", "AG-3F22", "AG-3F24", "AG-3F28", "AG-3F32"]),
        "fourth": (["AG-4F35", "AG-4F36", "AG-4F39", "AG-4F42", "AG-4F44", "AG-4F45", "AG-4F48", "AG-4F52"],
                   ["AG-4F37", "AG-4F40", "AG-4F46", "AG-4F49", "AG-4F50"],
                   ["AG-4F34", "AG-4F38", "AG-4F41", "AG-4F43", "AG-4F47", "AG-4F51"]),
    }
    phases: dict[str, float] = {}
    for ab, bc, ca in groups.values():
        for ids, line in ((ab, "AB"), (bc, "BC"), (ca, "CA")):
            phases.update(dict.fromkeys(ids, LINE_PHASES_DEG[line]))
    b = _Builder("jpl", phases, [])
    lines = {g: _lines(b.current(ab), b.current(bc), b.current(ca)) for g, (ab, bc, ca) in groups.items()}
    for p in "abc":
        b.add(f"First Floor SP1 I_{p}", lines["sp1"][p], 100.0)
        b.add(f"First Floor SP2 I_{p}", lines["sp2"][p], 100.0)
        b.add(f"Third Floor Panel I_{p}", lines["third"][p], 225.0)
        b.add(f"Fourth Floor Panel I_{p}", lines["fourth"][p], 225.0)
    for name, members, cap in (("First Floor Transformer", ("main", "sp1", "sp2"), first_kw),
                               ("Third/Fourth Floor Transformer", ("third", "fourth"), third_fourth_kw)):
        sec = {p: _combine(*((1.0, lines[g][p]) for g in members)) for p in "abc"}
        for p in "abc":
            b.add(f"{name} Secondary {p.upper()}", sec[p], cap * 1000 / 3 / 120)
        for p, q in (("a", "c"), ("b", "a"), ("c", "b")):
            b.add(f"{name} Primary {p.upper()}", _combine((0.25, sec[p]), (-0.25, sec[q])),
                  cap * 1000 / 3 / 120 * math.sqrt(3))
    return b


def site_ids(builder: _Builder) -> list[str]:
    """The builder's station ids in a fixed order (the stations of a scenario without ids)."""
    return list(builder.phase_deg)


# ---------------------------------------------------------------------------- synthetic tree
def tree_network(spec: str, n_stations: int, feeder_kw: float) -> Network:
    """`tree:B1,B2`: a feeder (limit feeder_kw) -> B1 transformers -> B2 panels each; the stations spread
    evenly over the B1 * B2 panels (station i on panel i mod B1 B2); limits in kW (TREE_OVERSUBSCRIPTION)."""
    b1, b2 = parse_tree(spec)
    panels = b1 * b2
    panel_of = np.arange(n_stations) % panels
    transformer_of = panel_of // b2
    per_panel = np.bincount(panel_of, minlength=panels)
    per_transformer = np.bincount(transformer_of, minlength=b1)
    names = ["feeder"]
    rows = [np.ones(n_stations)]
    limits = [feeder_kw]
    for t in range(b1):
        if per_transformer[t] == 0:
            continue
        t_limit = TREE_OVERSUBSCRIPTION * feeder_kw * per_transformer[t] / n_stations
        names.append(f"transformer {t}")
        rows.append((transformer_of == t).astype(np.float64))
        limits.append(t_limit)
        for q in range(b2):
            panel = t * b2 + q
            if per_panel[panel] == 0:
                continue
            names.append(f"panel {t}.{q}")
            rows.append((panel_of == panel).astype(np.float64))
            limits.append(TREE_OVERSUBSCRIPTION * t_limit * per_panel[panel] / per_transformer[t])
    return Network(spec, tuple(names), np.array(rows), np.array(limits), ("kW",) * len(names))


def parse_tree(spec: str) -> tuple[int, int]:
    """(B1, B2) of `tree:B1,B2` (NetworkError naming the spec otherwise)."""
    text = spec[len("tree:"):]
    parts = text.split(",")
    try:
        b1, b2 = (int(x) for x in parts)
    except ValueError:
        raise NetworkError(f"EnvConfig.network = {spec!r}: expected tree:B1,B2 with two integers >= 1 "
                           "(transformers, panels per transformer)") from None
    if b1 < 1 or b2 < 1 or b1 * b2 > MAX_CONSTRAINTS:
        raise NetworkError(f"EnvConfig.network = {spec!r}: B1 and B2 must be >= 1 with B1 * B2 <= {MAX_CONSTRAINTS}")
    return b1, b2


# ------------------------------------------------------------------------------ user files
def read_network_file(path: str | Path) -> dict[str, Any]:
    """The mapping of a network file (.yaml/.yml or .json) with its `root` node; NetworkError naming the
    file otherwise."""
    try:
        data = read_mapping_file(path, "network file", (".yaml", ".yml", ".json"))
    except ValueError as exc:
        raise NetworkError(str(exc)) from None
    if "root" not in data:
        raise NetworkError(f"network file {path}: top level must be a mapping with a 'root' node (see docs/networks.md)")
    return data


def file_builder(path: str | Path, stations: Sequence[str]) -> _Builder:
    """A user's tree (`network:PATH`): nodes with `name`, one of `limit_kw` / `limit_a`, and `children`
    (nodes) and/or `stations` (ids, or {id, phase} with phase AB / BC / CA or degrees). A kW node limits
    the sum of its stations' powers; an A node the current of each line: with line-to-line stations
    three constraints (I_a, I_b, I_c), else one on the phasor sum of its stations' currents."""
    data = read_network_file(path)
    where = f"network file {str(path)!r}"
    unknown = sorted(set(data) - {"root", "phase"})
    if unknown:
        raise NetworkError(f"{where}: unknown top-level key(s) {unknown}; allowed: root, phase")
    default_phase = data.get("phase", 0.0)
    phases: dict[str, float] = {}
    b = _Builder(f"network:{path}", phases, [])
    seen_names: set[str] = set()

    def listed(node: Mapping[str, Any], key: str, name: str) -> list[Any]:
        """The list under `key` (absent or null: empty); a single value is refused (a string would be split
        into characters)."""
        value = node.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise NetworkError(f"{where}: node {name!r}: {key} = {value!r}: must be a list (write [{value}] for one)")
        return value

    def station_of(entry: Any, node: str) -> tuple[str, float | str]:
        if isinstance(entry, Mapping):
            if "id" not in entry:
                raise NetworkError(f"{where}: node {node!r}: station entry {dict(entry)} needs an 'id'")
            unknown = sorted(set(entry) - {"id", "phase"})
            if unknown:
                raise NetworkError(f"{where}: node {node!r}: station entry {dict(entry)}: unknown key(s) {unknown}; "
                                   "allowed: id, phase")
            return station_id(entry["id"], node), entry.get("phase", default_phase)
        return station_id(entry, node), default_phase

    def station_id(value: Any, node: str) -> str:
        if isinstance(value, (str, numbers.Integral)) and not isinstance(value, bool) and str(value).strip():
            return str(value)
        raise NetworkError(f"{where}: node {node!r}: station {value!r}: an id must be a non-empty string or an "
                           "integer (or a mapping with 'id')")

    def phase_deg(value: Any, what: str) -> float:
        if isinstance(value, str) and value.upper() in LINE_PHASES_DEG:
            return LINE_PHASES_DEG[value.upper()]
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise NetworkError(f"{where}: {what}phase = {value!r}: must be AB, BC, CA or an angle in degrees")

    def visit(node: Any, depth: int) -> dict[str, str]:
        """Add the node's constraint(s); return {station id: line} of every station below it."""
        if depth > 64:
            raise NetworkError(f"{where}: nodes nested deeper than 64 levels")
        if not isinstance(node, Mapping):
            raise NetworkError(f"{where}: a node must be a mapping with name, limit_kw or limit_a, children/stations; "
                               f"got {type(node).__name__}")
        name = str(node.get("name", f"node {len(seen_names)}"))
        if name in seen_names:
            raise NetworkError(f"{where}: node name {name!r} appears twice")
        seen_names.add(name)
        unknown = set(node) - {"name", "limit_kw", "limit_a", "children", "stations"}
        if unknown:
            raise NetworkError(f"{where}: node {name!r}: unknown key(s) {sorted(unknown)}; allowed: name, limit_kw, "
                               "limit_a, children, stations")
        below: dict[str, str] = {}
        for key in [k for k in node if k in ("stations", "children")]:   # in the file's order: station i is its i-th
            for entry in listed(node, key, name):
                if key == "children":
                    below.update(visit(entry, depth + 1))
                    continue
                sid, phase = station_of(entry, name)
                if sid in phases:
                    raise NetworkError(f"{where}: station {sid!r} appears twice (node {name!r})")
                phases[sid] = phase_deg(phase, f"node {name!r}: station {sid!r} ")
                below[sid] = phase.upper() if isinstance(phase, str) else "single"
        limits = [k for k in ("limit_kw", "limit_a") if k in node]
        if len(limits) > 1:
            raise NetworkError(f"{where}: node {name!r}: give limit_kw or limit_a, not both")
        if limits:
            value = node[limits[0]]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
                hint = " (YAML reads 4e1 as text: write 40 or 4.0e1)" if _is_float_text(value) else ""
                raise NetworkError(f"{where}: node {name!r}: {limits[0]} = {value!r}: must be a finite number > 0{hint}")
            if limits[0] == "limit_kw":
                b.add(name, b.current(list(below)), float(value), "kW")
            elif any(line in LINE_PHASES_DEG for line in below.values()):
                groups = [b.current([s for s, line in below.items() if line == key]) for key in ("AB", "BC", "CA")]
                single = [s for s, line in below.items() if line not in LINE_PHASES_DEG]
                if single:
                    raise NetworkError(f"{where}: node {name!r}: mixes line-to-line stations with station "
                                       f"{single[0]!r} given by an angle; give every station below it AB, BC or CA")
                for p, current in _lines(*groups).items():
                    b.add(f"{name} I_{p}", current, float(value), "A")
            else:
                b.add(name, b.current(list(below)), float(value), "A")
        return below

    phase_deg(default_phase, "top-level ")
    visit(data["root"], 0)
    if not b.rows:
        raise NetworkError(f"{where}: no node has limit_kw or limit_a: a network needs at least one limit (without "
                           "one, and with P_ref no constraint on a site network, nothing would be limited)")
    return b


def _is_float_text(value: Any) -> bool:
    try:
        return isinstance(value, str) and math.isfinite(float(value))
    except ValueError:
        return False


# ---------------------------------------------------------------------------------- resolve
NETWORK_SPECS = ("area", "caltech", "jpl", "tree:B1,B2", "network:PATH")
SITE_FIELDS = {"transformer_kw": "caltech", "jpl_first_transformer_kw": "jpl", "jpl_third_fourth_transformer_kw": "jpl"}
"""EnvConfig fields that only the named built-in network reads."""


def check_network_spec(spec: str) -> None:
    """NetworkError with one line if `spec` is not one of NETWORK_SPECS (files are read, trees parsed)."""
    if spec in ("area", "caltech", "jpl"):
        return
    if spec.startswith("tree:"):
        parse_tree(spec)
        return
    if spec.startswith("network:"):
        read_network_file(network_path(spec))
        return
    raise NetworkError(f"EnvConfig.network = {spec!r}: must be one of {', '.join(NETWORK_SPECS)}")


def network_path(spec: str) -> str:
    """The PATH of `network:PATH`; NetworkError when it is empty."""
    path = spec[len("network:"):]
    if not path.strip():
        raise NetworkError(f"EnvConfig.network = {spec!r}: needs the path of a network file after 'network:' "
                           "(.yaml, .yml or .json)")
    return path


def network_files(spec: str) -> dict[str, str]:
    """The file a network spec reads (`network:PATH`, by its resolved path) -> its sha256; {} for the built-in
    networks. Part of what a row was computed from (provenance), like a scenario's data files."""
    if not spec.startswith("network:"):
        return {}
    path = Path(network_path(spec)).expanduser()
    return {str(path.resolve()): file_sha256(path)}


def is_site(spec: str) -> bool:
    """True for networks whose limits replace the area limit (caltech, jpl, network:PATH): P_ref is then
    no constraint unless the user sets it."""
    return spec in ("caltech", "jpl") or spec.startswith("network:")


def site_network(config: Any, station_ids: Sequence[str] | None = None) -> Network:
    """The network of the plant `config` (a pev_env.config.EnvConfig, which imports this module) for its
    stations.

    station_ids: the scenario's station ids (ACN data); without them station i is the network's i-th
    station (caltech / jpl: in acnportal's order; files: in the order the file lists them). `area`
    and `tree:` use P_ref; a site network adds the area row only when the user set P_ref.
    """
    spec, n = config.network, config.n_stations
    if spec == "area":
        return area_network(n, config.P_ref)
    if spec.startswith("tree:"):
        return tree_network(spec, n, config.P_ref)
    if spec == "caltech":
        builder = caltech_builder(config.transformer_kw)
    elif spec == "jpl":
        builder = jpl_builder(config.jpl_first_transformer_kw, config.jpl_third_fourth_transformer_kw)
    elif spec.startswith("network:"):
        builder = file_builder(network_path(spec), station_ids or [])
    else:
        raise NetworkError(f"EnvConfig.network = {spec!r}: must be one of {', '.join(NETWORK_SPECS)}")
    if station_ids is None:
        ids = site_ids(builder)
        if n > len(ids):
            raise NetworkError(f"EnvConfig.network = {spec!r}: has {len(ids)} stations, fewer than the plant's "
                               f"n_stations = {n}")
        station_ids = ids[:n]
    elif len(station_ids) != n:
        raise NetworkError(f"network {spec}: {len(station_ids)} station ids for n_stations = {n}")
    network = builder.build(list(station_ids), config.voltage_v)
    if config.is_set("P_ref") and config.P_ref < float(config.station_p_max.sum()):  # an area limit that can bind
        network = network.with_rows(area_network(n, config.P_ref))
    return network
