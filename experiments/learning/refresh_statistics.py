"""Recompute the RL statistics of finished results folders from their rows, without running anything again:

    python -m experiments.learning.refresh_statistics results/learned/area results/learned/network-40

The rows (metrics.csv) stay as they were run; the "RL statistics" section of summary.md (`rl_report.markdown`)
and plots/performance_profiles.png (when the folder has plots) are rewritten with this version's statistics, and
the section says so. Use it when the statistics change (e.g. the crossed bootstrap over training seeds and days)
and a rerun would only repeat the same episodes. The folder is locked while it is rewritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from experiments.learning import rl_report

SECTION = "\n## RL statistics"
"""Where the section starts in summary.md (`rl_report.markdown`)."""
AFTER = "**Learned models**"
"""What follows the section in summary.md (`compare.models_note`), if anything."""


def refresh(folder: Path) -> None:
    """Rewrite the RL statistics section of `folder`'s summary.md and its performance profiles from its
    metrics.csv (the models' checksums from run.json); ValueError naming the folder when it has none."""
    from experiments.outputs import plots
    from experiments.outputs.outdir import claim
    from experiments.outputs.provenance import code_checksum
    from experiments.outputs.results import save_figure, write_text
    from experiments.outputs.summary import NONCAUSAL_MARK

    with claim(folder, ()):
        try:
            metrics = pd.read_csv(folder / "metrics.csv")
            summary = (folder / "summary.md").read_text()
            models = json.loads((folder / "run.json").read_text()).get("models", {})
        except (OSError, ValueError) as exc:
            raise ValueError(f"{folder}: not a results folder of compare/evaluate ({exc})") from None
        start = summary.find(SECTION)
        if start < 0 or not rl_report.has_learned(metrics):
            raise ValueError(f"{folder}: summary.md has no RL statistics section (no learned controller ran)")
        end = summary.find(AFTER, start)
        checksums = {name: model["sha256"] for name, model in models.items()}
        stamp = (f"\n\n_This section was recomputed from metrics.csv by `python -m experiments.learning."
                 f"refresh_statistics` (code {code_checksum()[:12]}); the rows are as they were run._\n\n")
        bounds = [c for c in dict.fromkeys(metrics["controller"]) if f"| {c} {NONCAUSAL_MARK}" in summary]
        write_text(folder / "summary.md", summary[:start] + rl_report.markdown(metrics, checksums, bounds) + stamp
                   + (summary[end:] if end >= 0 else ""))
        if (folder / "plots").is_dir():  # a run with --no-plots has none
            fig = plots.performance_profiles(rl_report.profiles(metrics, checksums))
            save_figure(fig, folder / "plots" / "performance_profiles.png")
            plots.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (module doc); exit 2 with one line on a folder that cannot be refreshed."""
    parser = argparse.ArgumentParser(prog="python -m experiments.learning.refresh_statistics",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", help="results folders of compare/evaluate with learned rows")
    args = parser.parse_args(argv)
    for folder in map(Path, args.folders):
        try:
            refresh(folder)
        except ValueError as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}\n")
        print(f"rewrote the RL statistics of {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
