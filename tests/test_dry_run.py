"""`pev-experiments ... --dry-run`: every check of a real run, then one line of what would run; nothing is run
or written (the documented commands are checked this way in tests/test_docs_examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.cli.main import main


def test_compare_dry_run_names_the_grid_and_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["compare", "--scenarios", "seed,seed-20", "--seeds", "0-2,7", "--controllers", "edf,llf", "--out", str(out)]
    assert main([*argv, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "2 controllers (edf,llf) x 2 scenarios (seed,seed-20) x 4 seeds (0-2,7) = 16 runs" in printed
    assert str(out) in printed and not out.exists()


@pytest.mark.parametrize("argv, allowed", [
    (["compare", "--scenarios", "acn-caltech", "--set", "env.sampling_time=7", "--set", "env.total_time=700"], "compare.scenarios: acn-caltech"),
    (["compare", "--controllers", "nope"], "nope"),
    (["compare", "--set", "mpc.colour=red"], "colour"),
    (["tune", "--grid", "colour=red"], "colour"),
])
def test_dry_run_stops_on_what_a_real_run_stops_on(argv: list[str], allowed: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--dry-run"])
    assert exc.value.code == 2
    assert allowed in capsys.readouterr().err


def test_other_commands_dry_run(tmp_path: Path, capsys) -> None:
    assert main(["train", "--seeds", "1000-1003", "--out", str(tmp_path / "m"), "--dry-run"]) == 0
    assert main(["tune", "--grid", "policy.horizon=12,24", "--out", str(tmp_path / "t"), "--dry-run"]) == 0
    assert main(["scale", "--sizes", "3,6", "--out", str(tmp_path / "s"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would run ippo for 2400000 station-samples" in printed and "x 4 seeds (1000-1003)" in printed
    assert "2 settings (policy.horizon=12,24)" in printed and "sizes (3,6)" in printed
    assert not list(tmp_path.iterdir())


def test_scale_dry_run_names_the_centralised_cap_only_when_it_runs(tmp_path: Path, capsys) -> None:
    for controllers, cap in (("mpc-decentralised", False), ("mpc-decentralised,mpc-centralised", True)):
        assert main(["scale", "--sizes", "3,6", "--controllers", controllers, "--centralised-max", "3",
                     "--out", str(tmp_path / "s"), "--dry-run"]) == 0
        assert ("centralised up to N = 3" in capsys.readouterr().out) == cap
