"""The built-in caltech / jpl networks against acnportal 0.3.3: constants in CI (no acnportal), live when installed.

The constants were produced once with acnportal 0.3.3 (`/work/acnvenv`, see benchmarks/acn_network_crosscheck.py):

    net = caltech_acn(basic_evse=True, voltage=208, transformer_cap=40)  # and 25; jpl_acn(basic_evse=True, voltage=208)
    list(net.constraint_index), net.magnitudes
    np.abs(net.constraint_current(amps[:, None], linear=False))[:, 0]

with amps the schedule `_digits_amps` / `_full_amps` over `net.station_ids`, printed with repr() and pasted.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from pev_env.config import EnvConfig
from pev_env.network import caltech_builder, jpl_builder, site_ids, site_network
from pev_env.plant import unbound_area_limit

VOLTAGE_V = 208.0
CALTECH_NAMES = ("CC Pod", "AV Pod", "Secondary A", "Secondary B", "Secondary C", "Primary A", "Primary B", "Primary C")
CALTECH_LIMITS = {  # transformer_cap kW -> limits (A) in CALTECH_NAMES order
    40.0: (80.0, 80.0, 111.11111111111111, 111.11111111111111, 111.11111111111111, 48.13477737665463,
           48.13477737665463, 48.13477737665463),
    25.0: (80.0, 80.0, 69.44444444444444, 69.44444444444444, 69.44444444444444, 30.084235860409148,
           30.084235860409148, 30.084235860409148),
}
CALTECH_LOADS = {  # schedule -> |constraint_current| (A); the same for every transformer_cap
    "digits": (162.0, 228.0, 611.5586643977828, 621.3243919242186, 303.189709587908, 184.69772602823238,
               298.7653761733444, 190.71116904890496),
    "full": (256.0, 256.0, 1125.0173331998046, 1125.0173331998046, 775.958761790857, 392.89693304987765, 528.0,
             392.8969330498776),
}
JPL_NAMES = tuple(f"First Floor SP1 I_{p}|First Floor SP2 I_{p}|Third Floor Panel I_{p}|Fourth Floor Panel I_{p}"
                  for p in "abc")
JPL_NAMES = tuple(n for group in JPL_NAMES for n in group.split("|")) + tuple(
    f"{t} Transformer {side} {p}" for t in ("First Floor", "Third/Fourth Floor") for side in ("Secondary", "Primary")
    for p in "ABC")
JPL_LIMITS = (100.0, 100.0, 225.0, 225.0, 100.0, 100.0, 225.0, 225.0, 100.0, 100.0, 225.0, 225.0, 125.0, 125.0, 125.0,
              216.50635094610965, 216.50635094610965, 216.50635094610965, 416.6666666666667, 416.6666666666667,
              416.6666666666667, 721.6878364870322, 721.6878364870322, 721.6878364870322)
JPL_LOADS = {
    "digits": (46.776062254106, 17.349351572897476, 265.5654344977901, 164.31981012647262, 28.0, 15.716233645501712,
               227.71912523984454, 161.87340732807226, 26.0, 13.892443989449804, 175.78680269007685,
               135.9742622704753, 81.46164741766522, 66.14378277661477, 60.506198029623384, 31.838459447655442,
               33.87569187485328, 24.284768889161782, 429.8732371292728, 388.77628528499525, 311.1253766570641,
               160.4744917424573, 189.58457875048808, 139.44107178302954),
    "full": (110.85125168440815, 110.85125168440815, 389.2968019390861, 389.2968019390861, 64.0, 110.85125168440815,
             363.4501341312175, 363.4501341312175, 64.0, 110.85125168440815, 305.2605444534226, 305.2605444534226,
             277.12812921102034, 249.92798962901296, 249.92798962901296, 116.2067123706716, 116.20671237067161, 104.0,
             778.5936038781718, 726.900268262435, 610.5210889068452, 298.9046670763104, 344.2789566616004,
             273.408119850161),
}
RTOL = 1e-9


def _digits_amps(station_id: str) -> float:
    """A deterministic pilot 0-32 A per station: the digits of its id modulo 33 ('CA-308' -> 11 A)."""
    return float(int("".join(ch for ch in station_id if ch.isdigit())) % 33)


def _full_amps(station_id: str) -> float:
    return 32.0


SCHEDULES = {"digits": _digits_amps, "full": _full_amps}


def _network(site: str, station_ids: list[str], transformer_kw: float | None = None):
    fields = {"network": site, "n_stations": len(station_ids), "p_max": 6.656, "voltage_v": VOLTAGE_V}
    if transformer_kw is not None:
        fields["transformer_kw"] = transformer_kw
    return site_network(unbound_area_limit(EnvConfig(**fields)), station_ids)


def _loads(network, station_ids: list[str], schedule: str) -> np.ndarray:
    amps = np.array([SCHEDULES[schedule](s) for s in station_ids])
    return network.loads(amps * VOLTAGE_V / 1000.0)


FACTS = [  # (site, transformer kW or None for jpl's defaults 45 / 150, stations, names, limits, loads by schedule)
    *(("caltech", kw, 54, CALTECH_NAMES, limits, CALTECH_LOADS) for kw, limits in CALTECH_LIMITS.items()),
    ("jpl", None, 52, JPL_NAMES, JPL_LIMITS, JPL_LOADS),
]


@pytest.mark.parametrize(("site", "transformer_kw", "n", "names", "limits", "loads"), FACTS)
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_site_rows_are_acnportals(site, transformer_kw, n, names, limits, loads, schedule: str) -> None:
    builder = caltech_builder(transformer_kw) if site == "caltech" else jpl_builder(45.0, 150.0)
    ids = site_ids(builder)
    assert len(ids) == n
    reordered = ids[::-1]  # our station order need not be acnportal's
    network = _network(site, reordered, transformer_kw)
    assert network.names == names and network.units == ("A",) * len(names)
    np.testing.assert_allclose(network.limit, limits, rtol=RTOL, atol=0)
    np.testing.assert_allclose(_loads(network, reordered, schedule), loads[schedule], rtol=RTOL, atol=0)


def test_a_station_subset_drops_only_its_columns() -> None:
    """The 52 stations of a data file: the loads are those of the full site with the others idle."""
    ids = site_ids(caltech_builder(40.0))
    subset = [s for s in ids if s not in ("CA-149", "CA-509")]
    full_amps = {s: _digits_amps(s) for s in ids}
    loads = _network("caltech", subset, 40.0).loads(np.array([full_amps[s] for s in subset]) * VOLTAGE_V / 1000.0)
    idle = dict(full_amps, **{"CA-149": 0.0, "CA-509": 0.0})
    expect = _network("caltech", ids, 40.0).loads(np.array([idle[s] for s in ids]) * VOLTAGE_V / 1000.0)
    np.testing.assert_allclose(loads, expect, rtol=RTOL, atol=1e-12)


# ----------------------------------------------------------------------- live (optional acnportal)
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "acn_network_crosscheck.py"


@pytest.fixture(scope="module")
def crosscheck(request):
    pytest.importorskip("acnportal.acnsim")
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(SCRIPT.parent))  # the script imports benchmarks/acn_llf_crosscheck.py
    request.addfinalizer(mp.undo)
    spec = importlib.util.spec_from_file_location("acn_network_crosscheck", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    mp.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("site", "transformer_kw"), [("caltech", 40.0), ("caltech", 25.0), ("jpl", None)])
def test_loads_equal_acnportal_live(crosscheck, site: str, transformer_kw: float | None) -> None:
    result = crosscheck.constraint_check(site, transformer_kw, n_schedules=50)
    assert result["names_match"] and result["limits_rel"] <= RTOL and result["loads_rel"] <= RTOL


@pytest.mark.parametrize(("site", "transformer_kw", "n", "names", "limits", "loads"), FACTS)
def test_facts_are_acnportals_live(crosscheck, site, transformer_kw, n, names, limits, loads) -> None:
    """The pasted constants above are what acnportal gives now."""
    net = crosscheck.acn_site(site, transformer_kw)
    assert len(net.station_ids) == n and tuple(net.constraint_index) == names
    np.testing.assert_allclose(np.asarray(net.magnitudes, dtype=float), limits, rtol=RTOL, atol=0)
    for schedule, expect in loads.items():
        amps = np.array([SCHEDULES[schedule](s) for s in net.station_ids])[:, None]
        current = np.abs(net.constraint_current(amps, linear=False)[:, 0]).astype(float)
        np.testing.assert_allclose(current, expect, rtol=RTOL, atol=0)


def test_llf_on_the_caltech_network_matches_acnportal_live(crosscheck) -> None:
    """A quoted day at 25 kW: our llf within 0.5 % of acnportal's LLF bisecting to 1e-7 A (its 0.01 A default
    flips near-ties of laxity; see the script). Skipped while our llf ignores the network."""
    result = crosscheck.crosscheck_day("2019-05-13", 25.0, ["llf-exact"])
    if "llf-exact" in result.pending:
        pytest.skip(f"our llf is not network-aware yet: {result.pending['llf-exact']}")
    assert abs(result.diff_pct("llf-exact")) <= crosscheck.TOLERANCE_PCT["llf-exact"]
