"""Plug-in policies: an import path `package.module:ClassName` and the entry-point group `pev_mpc.policies`,
duck-typed; a bad one is exit 2 naming it. (On Ray: tests/test_backends.py.)"""
from __future__ import annotations

import pandas as pd
import pytest

from experiments.cli.main import main
from experiments.controllers.policies_plugin import ENTRY_POINT_GROUP, load_class

FAST = ["--scenarios", "seed", "--seeds", "0", "-q", "--no-plots"]
PLUGIN = "example_policies:HalfPower"


def test_import_path_policy_runs_next_to_the_built_in_ones(tmp_path) -> None:
    assert main(["compare", *FAST, "--controllers", f"{PLUGIN},edf", "--out", str(tmp_path)]) == 0
    rows = pd.read_csv(tmp_path / "metrics.csv").set_index("controller")
    assert set(rows.index) == {PLUGIN, "edf"} and rows.loc[PLUGIN, "local_violation_steps"] == 0
    assert PLUGIN in (tmp_path / "summary.md").read_text()


def test_entry_point_policy_by_its_short_name(tmp_path, monkeypatch) -> None:
    dist = tmp_path / "site" / "my_policies-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-policies\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nhalf-power = {PLUGIN}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert load_class("half-power").__name__ == "HalfPower"
    assert main(["compare", *FAST, "--controllers", "half-power", "--out", str(tmp_path / "out")]) == 0
    assert pd.read_csv(tmp_path / "out" / "metrics.csv")["controller"].tolist() == ["half-power"]


@pytest.mark.parametrize("name, problem", [("example_policies:NotAPolicy", "missing: act, act_array"),
                                           ("example_policies:Nothing", "AttributeError"),
                                           ("no_such_module:X", "ModuleNotFoundError"),
                                           ("half-power-not-installed", "unknown controller")])
def test_bad_plugins_are_exit_2_naming_them(tmp_path, capsys, name, problem) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["compare", *FAST, "--controllers", name, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and problem in err and name in err


def test_editing_a_helper_module_of_a_plugin_changes_its_checksum_and_a_resume_refuses(tmp_path, monkeypatch,
                                                                                       capsys) -> None:
    """plugin_sha256 hashes the plug-in's module and the modules of the user's it imports (here from the working
    directory), not installed packages: an edited helper makes the rows there stale."""
    from experiments.controllers.policies_plugin import source_checksum

    monkeypatch.chdir(tmp_path)
    (tmp_path / "helper_9c1.py").write_text("SHARE = 0.5\n")
    (tmp_path / "uses_helper_9c1.py").write_text(
        "from helper_9c1 import SHARE\nfrom pev_mpc.policies import EDF\n\nclass Mine(EDF):\n    share = SHARE\n")
    name = "uses_helper_9c1:Mine"
    args = ["compare", *FAST, "--no-traces", "--controllers", name, "--out", str(tmp_path / "out")]
    assert main(args) == 0
    before = source_checksum(name)
    (tmp_path / "helper_9c1.py").write_text("SHARE = 0.25\n")
    assert source_checksum(name) != before
    with pytest.raises(SystemExit) as stop:
        main([*args, "--resume"])
    assert stop.value.code == 2
    assert f"holds rows computed with other settings ({name}/seed: plugin_sha256" in capsys.readouterr().err
    from experiments.controllers.policies_plugin import source_files

    assert list(source_files("uses_helper_9c1")) == ["plug-in:helper_9c1.py", "plug-in:uses_helper_9c1.py"]


def test_a_file_the_plugin_reads_is_part_of_its_checksum_and_a_resume_refuses(tmp_path, monkeypatch,
                                                                              capsys) -> None:
    """A learned plug-in reads its weights from a file (here at import and when built): retrained weights made a
    --resume keep the rows of the old ones as the plug-in's; the files it read are now hashed with its source, and
    the files a library reads while the plug-in imports it are not."""
    from experiments.controllers.policies_plugin import source_checksum, source_files

    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "runs" / "weights_4d2.txt"
    weights.parent.mkdir()
    weights.write_text("0.5\n")
    (tmp_path / "scale_4d2.txt").write_text("1.0\n")
    (tmp_path / "reads_weights_4d2.py").write_text(
        "from pathlib import Path\nfrom pev_mpc.policies import EDF\n\n"
        f"SHARE = float(Path({str(weights)!r}).read_text())\n\n"
        "class Mine(EDF):\n    def __init__(self):\n        super().__init__()\n"
        "        self.scale = float(open('scale_4d2.txt').read())\n")
    name = "reads_weights_4d2:Mine"
    args = ["compare", *FAST, "--no-traces", "--controllers", name, "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert list(source_files("reads_weights_4d2")) == [
        "plug-in:reads_weights_4d2.py", "plug-in:runs/weights_4d2.txt", "plug-in:scale_4d2.txt"]
    before = source_checksum(name)
    assert main([*args, "--resume"]) == 0  # nothing changed: the rows are kept
    weights.write_text("0.25\n")
    assert source_checksum(name) != before
    with pytest.raises(SystemExit) as stop:
        main([*args, "--resume"])
    assert stop.value.code == 2
    assert f"holds rows computed with other settings ({name}/seed: plugin_sha256" in capsys.readouterr().err


def test_the_weights_a_re_exported_plugin_class_reads_at_import_are_part_of_its_checksum(tmp_path,
                                                                                         monkeypatch) -> None:
    """`pkg:Mine` with Mine defined in pkg.impl (re-exported by pkg/__init__.py, as an entry point often names
    it): the files read while importing pkg were recorded under 'pkg' and looked up under 'pkg.impl', so
    retrained weights kept the checksum of the old ones."""
    from experiments.controllers.policies_plugin import make, source_checksum, source_files

    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights_7e1.txt").write_text("0.5\n")
    (tmp_path / "pkg_7e1").mkdir()
    (tmp_path / "pkg_7e1" / "__init__.py").write_text("from .impl import Mine\n")
    (tmp_path / "pkg_7e1" / "impl.py").write_text(
        "from pathlib import Path\nfrom pev_mpc.policies import EDF\n\n"
        "SHARE = float(Path('weights_7e1.txt').read_text())\n\nclass Mine(EDF):\n    pass\n")
    make("pkg_7e1:Mine")
    assert "cwd:weights_7e1.txt" in source_files("pkg_7e1.impl")
    before = source_checksum("pkg_7e1:Mine")
    (tmp_path / "weights_7e1.txt").write_text("0.25\n")
    assert source_checksum("pkg_7e1:Mine") != before


def test_the_weights_an_installed_plugin_reads_are_part_of_its_checksum(tmp_path, monkeypatch) -> None:
    """A plug-in installed in site-packages (an entry point's package, `pip install .`): every frame of its code
    was installed code, so the weights its class read when built were never recorded; its own package's frames
    are now the user's wherever it is installed (and only the frames below `make` count: a caller outside the
    installed code, this test or the `pev-experiments` script, made any file read there count)."""
    import os

    from experiments.controllers import policies_plugin

    site = tmp_path / "site-packages"
    (site / "installed_3b8").mkdir(parents=True)
    weights = tmp_path / "weights_3b8.txt"
    weights.write_text("0.5\n")
    (site / "installed_3b8" / "__init__.py").write_text(
        "from pev_mpc.policies import EDF\n\nclass Mine(EDF):\n    def __init__(self):\n        super().__init__()\n"
        f"        self.share = float(open({str(weights)!r}).read())\n")
    monkeypatch.syspath_prepend(str(site))
    installed = {*policies_plugin._installed_folders(), str(site) + os.sep,
                 os.path.dirname(os.path.abspath(__file__)) + os.sep}  # this test calls as installed code would
    monkeypatch.setattr(policies_plugin, "_installed_folders", lambda: installed)
    policies_plugin.make("installed_3b8:Mine")
    assert f"file:{weights}" in policies_plugin.source_files("installed_3b8")
    before = policies_plugin.source_checksum("installed_3b8:Mine")
    weights.write_text("0.25\n")
    assert policies_plugin.source_checksum("installed_3b8:Mine") != before
