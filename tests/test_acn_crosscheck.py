"""Our LLF agrees with acnportal's least_laxity_first (optional dependency: skipped without acnportal)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("acnportal.acnsim")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "acn_llf_crosscheck.py"
ROWS = [  # two Level 2 stations and a DC fast charger, a binding area limit
    "2019-05-03 08:00:00-07:00,2019-05-03 12:00:00-07:00,30,20,S-1,a",
    "2019-05-03 08:10:00-07:00,2019-05-03 11:00:00-07:00,25,19,S-2,b",
    "2019-05-03 08:20:00-07:00,2019-05-03 09:20:00-07:00,45,42,DC-1,c",
    "2019-05-03 12:30:00-07:00,2019-05-03 18:00:00-07:00,20,18,S-1,d",
]


@pytest.fixture(scope="module")
def crosscheck():
    spec = importlib.util.spec_from_file_location("acn_llf_crosscheck", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.crosscheck


def test_llf_matches_acnportal_with_a_fast_charger(crosscheck, tmp_path):
    path = tmp_path / "site.csv"
    path.write_text("arrival,departure,requested_energy,delivered_energy,station_id,session_id\n"
                    + "".join(r + "\n" for r in ROWS))
    result = crosscheck(f"acn:{path}:2019-05-03")
    assert result["stations"] == 3 and result["diff_pct"] <= 0.1


def test_llf_matches_acnportal_on_a_shipped_day(crosscheck):
    assert crosscheck("acn-caltech")["diff_pct"] <= 0.1
