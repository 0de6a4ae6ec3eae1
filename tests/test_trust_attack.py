"""Fixes from the attacker pass (benchmarks/attack.py, benchmarks/attack_log.md): each was a misleading or
unnamed one-line error before."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.cli.main import main
from test_trust_edges import stops  # exit 2 with one line

FAST = ["--seeds", "0", "--controllers", "edf", "-q", "--no-plots", "--workers", "1"]
HEADER = "arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"


def test_header_only_scenario_csv_says_it_has_no_sessions(tmp_path, capsys) -> None:
    (tmp_path / "h.csv").write_text(HEADER)
    text = stops(capsys, "compare", *FAST, "--scenarios", f"csv:{tmp_path / 'h.csv'}", "--out", str(tmp_path / "o"))
    assert "no sessions (a header and no rows)" in text and "set env.n_stations" in text
    assert main(["compare", *FAST, "--scenarios", f"csv:{tmp_path / 'h.csv'}", "--set", "env.n_stations=2",
                 "--set", "env.total_time=60", "--out", str(tmp_path / "empty")]) == 0


@pytest.mark.parametrize("option", ["--config", "--env-file"])
def test_binary_config_file_is_named(tmp_path: Path, capsys, option) -> None:
    (tmp_path / "b.yaml").write_bytes(b"\x00\xff\xfe" * 10)
    text = stops(capsys, "compare", *FAST, "--scenarios", "seed", option, str(tmp_path / "b.yaml"), "--out",
                 str(tmp_path / "o"))
    assert f"{tmp_path / 'b.yaml'}: not UTF-8 text (byte 1: invalid start byte)" in text


@pytest.mark.parametrize("argv", [["compare", "--backend", "spark"], ["bogus"], ["tune", "--controllers", "x"]])
def test_bad_arguments_are_one_line_without_the_usage(capsys, argv) -> None:
    text = stops(capsys, *argv)
    assert "usage:" not in text and "--help)" in text
